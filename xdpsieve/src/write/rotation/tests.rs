//! Names and decisions against tcpdump's: sizes and times are passed in, no clock or disk.

use super::*;

fn plan(size_mb: Option<u64>, period: Option<u64>, files: Option<u32>) -> RotationPlan {
    RotationPlan {
        size: size_mb.map(|mb| mb * MEGABYTE),
        period: period.map(Duration::from_secs),
        files,
        command: None,
    }
}

/// Rotates by size `rounds` times and returns the names in order, the first included.
fn names_by_size(files: Option<u32>, rounds: usize) -> Vec<String> {
    let (mut r, first) = Rotation::start(plan(Some(1), None, files), "d.pcap", 0).unwrap();
    let mut names = vec![first];
    for _ in 0..rounds {
        assert_eq!(r.before_packet(MEGABYTE, 0).unwrap(), Decision::Keep);
        match r.before_packet(MEGABYTE + 1, 0).unwrap() {
            Decision::Rotate(name) => names.push(name),
            other => panic!("{other:?}"),
        }
    }
    names
}

#[test]
fn width_is_the_digits_of_files_minus_one() {
    let widths: Vec<usize> = [
        None,
        Some(1),
        Some(2),
        Some(10),
        Some(11),
        Some(100),
        Some(101),
    ]
    .into_iter()
    .map(number_width)
    .collect();
    assert_eq!(widths, [0, 0, 1, 1, 2, 2, 3]);
}

#[test]
fn size_alone_numbers_from_one_after_the_first() {
    assert_eq!(
        names_by_size(None, 3),
        ["d.pcap", "d.pcap1", "d.pcap2", "d.pcap3"]
    );
}

#[test]
fn size_with_files_is_a_padded_ring() {
    assert_eq!(
        names_by_size(Some(3), 4),
        ["d.pcap0", "d.pcap1", "d.pcap2", "d.pcap0", "d.pcap1"]
    );
    let eleven = names_by_size(Some(11), 11);
    assert_eq!(eleven[0], "d.pcap00");
    assert_eq!(eleven[10], "d.pcap10");
    assert_eq!(eleven[11], "d.pcap00");
    // One file: always the same name, overwritten.
    assert_eq!(names_by_size(Some(1), 2), ["d.pcap", "d.pcap", "d.pcap"]);
}

#[test]
fn size_is_checked_before_the_packet_and_strictly_past_the_limit() {
    let (mut r, _) = Rotation::start(plan(Some(2), None, None), "d", 0).unwrap();
    assert_eq!(r.before_packet(2 * MEGABYTE, 0).unwrap(), Decision::Keep);
    assert_eq!(
        r.before_packet(2 * MEGABYTE + 1, 0).unwrap(),
        Decision::Rotate("d1".into())
    );
}

#[test]
fn period_formats_the_open_time_and_rotates_on_the_first_packet_after_it() {
    let (mut r, first) = Rotation::start(plan(None, Some(10), None), "c-%s.pcap", 1000).unwrap();
    assert_eq!(first, "c-1000.pcap");
    assert_eq!(r.before_packet(0, 1009).unwrap(), Decision::Keep);
    // Quiet until 1025: one new file, named when it opens, and the period restarts there.
    assert_eq!(
        r.before_packet(0, 1025).unwrap(),
        Decision::Rotate("c-1025.pcap".into())
    );
    assert_eq!(r.before_packet(0, 1034).unwrap(), Decision::Keep);
    assert_eq!(
        r.before_packet(0, 1035).unwrap(),
        Decision::Rotate("c-1035.pcap".into())
    );
    // Size means nothing without -C.
    assert_eq!(r.before_packet(u64::MAX, 1036).unwrap(), Decision::Keep);
}

#[test]
fn period_with_files_stops_after_that_many() {
    let (mut r, first) = Rotation::start(plan(None, Some(1), Some(3)), "g%s", 0).unwrap();
    assert_eq!(first, "g0");
    assert_eq!(
        r.before_packet(0, 1).unwrap(),
        Decision::Rotate("g1".into())
    );
    assert_eq!(
        r.before_packet(0, 2).unwrap(),
        Decision::Rotate("g2".into())
    );
    assert_eq!(r.before_packet(0, 2).unwrap(), Decision::Keep);
    assert_eq!(r.before_packet(0, 3).unwrap(), Decision::Stop);
}

#[test]
fn period_and_size_number_within_each_period() {
    let (mut r, first) = Rotation::start(plan(Some(1), Some(60), Some(3)), "p%s.", 0).unwrap();
    assert_eq!(first, "p0.0");
    let big = MEGABYTE + 1;
    assert_eq!(
        r.before_packet(big, 1).unwrap(),
        Decision::Rotate("p0.1".into())
    );
    assert_eq!(
        r.before_packet(big, 2).unwrap(),
        Decision::Rotate("p0.2".into())
    );
    assert_eq!(
        r.before_packet(big, 3).unwrap(),
        Decision::Rotate("p0.0".into())
    );
    // -W does not stop a run that has -C too; the number restarts with the period.
    assert_eq!(
        r.before_packet(big, 60).unwrap(),
        Decision::Rotate("p60.0".into())
    );
    assert_eq!(
        r.before_packet(big, 61).unwrap(),
        Decision::Rotate("p60.1".into())
    );
}

#[test]
fn names_pass_through_strftime_only_with_a_period() {
    assert_eq!(file_name("a%%b", None, 0, 0).unwrap(), "a%%b");
    assert_eq!(file_name("a%%b", Some(0), 0, 0).unwrap(), "a%b");
    assert_eq!(file_name("x", None, 7, 3).unwrap(), "x007");
    assert!(file_name("", None, 0, 0).is_err());
    let long = "%Y".repeat(3000);
    assert!(file_name(&long, Some(0), 0, 0).is_err());
}

//! Attachments: each interface's XDP bpf_link, pinned so it outlives the process
//! (fail-static), swapped atomically on a takeover, and removed only on an explicit detach.
//! An interface watcher re-attaches with [`Firewall::detach`] then [`Firewall::attach`].

use std::{
    io,
    path::{Path, PathBuf},
};

use aya::programs::{
    ProgramError, Xdp, XdpMode,
    links::{FdLink, PinnedLink},
    xdp::{XdpLink, XdpLinkId},
};

use super::{AttachMode, AttachedMode, Firewall, LoaderError, errno_in, ifindex_of, program_of};

/// One interface the program is attached to.
#[derive(Debug)]
pub struct Attachment {
    pub interface: String,
    pub ifindex: u32,
    pub mode: AttachedMode,
    /// Where its link is pinned, or is to be pinned again when the interface comes back.
    pin: PathBuf,
    link: Link,
}

impl Attachment {
    /// Where the link is pinned, or is to be pinned when it is attached again: the pin
    /// it was attached with, also for a netlink attachment (kernels before 5.9), which has
    /// none there.
    pub fn link_pin(&self) -> &Path {
        &self.pin
    }
}

/// What keeps an attachment in place.
#[derive(Debug)]
enum Link {
    /// A bpf_link pinned at `path`: it stays attached, whatever becomes of this process,
    /// until the pin is removed and the last descriptor closed.
    Pinned { fd: FdLink, path: PathBuf },
    /// A netlink attachment (aya's fallback before Linux 5.9): it stays by itself and is
    /// removed through netlink on an explicit detach. The id is the program's.
    Netlink(XdpLinkId),
    /// Nothing attached: the interface went away and could not be attached again yet (the
    /// watcher retries). Kept so the interface's mode is remembered.
    Gone,
}

impl Firewall {
    /// Attaches to `interface` and pins the link at `link_pin` (whose directory must exist
    /// on bpffs); `auto` falls back from native to skb mode and says so. If the link cannot
    /// be pinned it is detached again and this fails: an attachment that dies with the
    /// process is not what the operator asked for.
    pub fn attach(
        &mut self,
        interface: &str,
        mode: AttachMode,
        link_pin: &Path,
    ) -> Result<&Attachment, LoaderError> {
        let ifindex = ifindex_of(interface)?;
        let program = program_of(&mut self.ebpf)?;
        let try_attach = |program: &mut Xdp, mode: XdpMode| {
            program
                .attach_to_if_index(ifindex, mode)
                .map_err(|e| attach_error(interface, e))
        };
        let (link_id, attached) = match mode {
            AttachMode::Native => (try_attach(program, XdpMode::Driver)?, AttachedMode::Native),
            AttachMode::Skb => (try_attach(program, XdpMode::Skb)?, AttachedMode::Skb),
            AttachMode::Auto => match try_attach(program, XdpMode::Driver) {
                Ok(link) => (link, AttachedMode::Native),
                Err(LoaderError::NativeUnsupported { source, .. }) => {
                    crate::base::log::warning(format_args!(
                        "xdpsieve: warning: {interface} has no native XDP support ({source}); \
                         using skb (generic) mode, which runs later and costs more per packet"
                    ));
                    (try_attach(program, XdpMode::Skb)?, AttachedMode::Skb)
                }
                Err(e) => return Err(e),
            },
        };
        let link = self.pin_link(interface, link_id, link_pin)?;
        self.push_attachment(interface, ifindex, attached, link_pin, link);
        Ok(self.attachments.last().expect("just pushed"))
    }

    /// Turns a fresh attachment into a pinned link (or keeps a netlink one, with a warning).
    fn pin_link(
        &mut self,
        interface: &str,
        link_id: XdpLinkId,
        link_pin: &Path,
    ) -> Result<Link, LoaderError> {
        let pinned_before = self
            .attachments
            .iter()
            .filter(|a| matches!(a.link, Link::Pinned { .. }))
            .count();
        if self.xdp_links().is_some_and(|links| links <= pinned_before) {
            // aya fell back to netlink (bpf_link_create said EINVAL: kernels before 5.9).
            // Such an attachment outlives the process by itself but cannot be pinned.
            crate::base::log::warning(format_args!(
                "xdpsieve: warning: {interface} was attached through netlink, not a bpf_link \
                 (kernel before 5.9); `xdpsieve stop` cannot find it if xdpsieve dies: remove \
                 it then with `ip link set dev {interface} xdp off`"
            ));
            return Ok(Link::Netlink(link_id));
        }
        let program = program_of(&mut self.ebpf)?;
        let xdp_link = program
            .take_link(link_id)
            .map_err(|e| LoaderError::Load(format!("taking the link of {interface}: {e}")))?;
        let fd = FdLink::try_from(xdp_link)
            .map_err(|e| LoaderError::Load(format!("the link of {interface}: {e}")))?;
        // Pinning consumes the descriptor and hands it back inside the PinnedLink; if it
        // fails, the descriptor is closed and the kernel detaches the program.
        let pinned = fd.pin(link_pin).map_err(|source| LoaderError::Pin {
            interface: interface.into(),
            path: link_pin.into(),
            source,
        })?;
        Ok(Link::Pinned {
            fd: FdLink::from(pinned),
            path: link_pin.into(),
        })
    }

    /// XDP bpf_links that run this program (or its twin), if the kernel can tell. It cannot
    /// without CAP_SYS_ADMIN (listing the kernel's links needs it; a service runs without
    /// it): then a link is assumed, which every kernel that loads the program makes.
    fn xdp_links(&mut self) -> Option<usize> {
        let program_ids = self.program_ids();
        if program_ids.is_empty() {
            return None;
        }
        let mut links = 0;
        for link in aya::programs::loaded_links() {
            let link = link.ok()?;
            if program_ids.contains(&link.program_id())
                && link.link_type().ok() == Some(aya::programs::links::LinkType::Xdp)
            {
                links += 1;
            }
        }
        Some(links)
    }

    /// Remembers `interface` (its mode and link pin) with nothing attached, after a failed
    /// re-attach.
    pub(super) fn keep_record(
        &mut self,
        interface: &str,
        ifindex: u32,
        mode: AttachedMode,
        pin: &Path,
    ) {
        self.push_attachment(interface, ifindex, mode, pin, Link::Gone);
    }

    fn push_attachment(
        &mut self,
        interface: &str,
        ifindex: u32,
        mode: AttachedMode,
        pin: &Path,
        link: Link,
    ) {
        if !self.interface_names.iter().any(|(i, _)| *i == ifindex) {
            self.interface_names.push((ifindex, interface.to_string()));
        }
        self.attachments.push(Attachment {
            interface: interface.to_string(),
            ifindex,
            mode,
            pin: pin.to_path_buf(),
            link,
        });
    }

    /// Takes over the firewall whose link is pinned at `link_pin` (left by an instance
    /// whose recorder is gone): swaps this program in on the link atomically, so the
    /// interface is never without a firewall. `mode` is the mode the old one attached in.
    /// On failure the old firewall is left exactly as it was.
    pub fn take_over(
        &mut self,
        interface: &str,
        mode: AttachedMode,
        link_pin: &Path,
    ) -> Result<&Attachment, LoaderError> {
        let failed = |detail: String| LoaderError::TakeOver {
            interface: interface.into(),
            path: link_pin.into(),
            detail,
        };
        let ifindex = ifindex_of(interface)?;
        let pinned = PinnedLink::from_pin(link_pin).map_err(|e| failed(e.to_string()))?;
        let xdp_link = XdpLink::try_from(FdLink::from(pinned))
            .map_err(|e| failed(format!("not an XDP link: {e}")))?;
        let program = program_of(&mut self.ebpf)?;
        let id = program
            .attach_to_link(xdp_link)
            .map_err(|e| failed(format!("replacing the program on the link: {e}")))?;
        let xdp_link = program
            .take_link(id)
            .map_err(|e| failed(format!("taking the link back: {e}")))?;
        let fd = FdLink::try_from(xdp_link).map_err(|e| failed(e.to_string()))?;
        self.push_attachment(
            interface,
            ifindex,
            mode,
            link_pin,
            Link::Pinned {
                fd,
                path: link_pin.into(),
            },
        );
        Ok(self.attachments.last().expect("just pushed"))
    }

    /// Detaches from `interface` (explicitly: the operator asked for it): removes the link's
    /// pin and closes it, and the kernel detaches the program. For an interface watcher
    /// that re-attaches after the interface comes back, call [`Firewall::attach`] again.
    pub fn detach(&mut self, interface: &str) -> Result<(), LoaderError> {
        let Some(index) = self
            .attachments
            .iter()
            .position(|a| a.interface == interface)
        else {
            return Ok(());
        };
        let attachment = self.attachments.remove(index);
        self.release(attachment)
    }

    fn release(&mut self, attachment: Attachment) -> Result<(), LoaderError> {
        match attachment.link {
            Link::Pinned { fd, path } => {
                let removed = std::fs::remove_file(&path);
                // Closing the last descriptor of an unpinned link detaches the program.
                drop(fd);
                match removed {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        Err(LoaderError::Load(format!(
                            "removing the link pin {} of {}: {e}; the program stays attached \
                             until it is removed",
                            path.display(),
                            attachment.interface
                        )))
                    }
                    _ => Ok(()),
                }
            }
            Link::Gone => Ok(()),
            Link::Netlink(id) => program_of(&mut self.ebpf)?.detach(id).map_err(|e| {
                LoaderError::Load(format!("detaching from {}: {e}", attachment.interface))
            }),
        }
    }

    /// Pins the program at `path` (for bpftool, `status` and a later takeover).
    pub fn pin_program(&mut self, path: &Path) -> Result<(), LoaderError> {
        // A twin pinned there belongs to the generation this program replaces.
        let _ = std::fs::remove_file(path.with_file_name(super::TWIN_PIN));
        program_of(&mut self.ebpf)?.pin(path).map_err(|e| {
            LoaderError::Load(format!("pinning the program at {}: {e}", path.display()))
        })
    }

    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }

    /// Detaches from every interface (an explicit stop). Called before the final drain of
    /// the ring, so the counters stop moving and the summary is exact.
    pub fn detach_all(&mut self) {
        for attachment in std::mem::take(&mut self.attachments) {
            let interface = attachment.interface.clone();
            if let Err(e) = self.release(attachment) {
                crate::base::log::warning(format_args!(
                    "xdpsieve: warning: detaching from {interface}: {e}"
                ));
            }
        }
    }
}

impl Drop for Firewall {
    /// Fail-static: an end that is not an explicit stop (an error return, a panic) leaves
    /// every attachment in force. Pinned links stay by their pins; netlink attachments
    /// would be detached by aya's own drop, so they are taken out of its hands first.
    fn drop(&mut self) {
        for attachment in std::mem::take(&mut self.attachments) {
            if let Link::Netlink(id) = attachment.link
                && let Ok(program) = program_of(&mut self.ebpf)
                && let Ok(link) = program.take_link(id)
            {
                #[expect(
                    clippy::mem_forget,
                    reason = "fail-static: the link must outlive us, attached; aya's drop would detach it"
                )]
                std::mem::forget(link);
            }
        }
    }
}

fn attach_error(interface: &str, error: ProgramError) -> LoaderError {
    match errno_in(&error) {
        Some(libc::EBUSY) | Some(libc::EEXIST) => {
            LoaderError::AlreadyAttached(interface.into(), String::new())
        }
        Some(libc::EPERM) | Some(libc::EACCES) => LoaderError::PermissionDenied,
        Some(libc::EOPNOTSUPP) => {
            let source = io::Error::from_raw_os_error(libc::EOPNOTSUPP);
            LoaderError::NativeUnsupported {
                interface: interface.into(),
                source,
            }
        }
        _ => LoaderError::Attach {
            interface: interface.into(),
            source: error,
        },
    }
}

//! Putting the firewall back where the interface watcher (`watch`) found it missing: on an
//! interface that was deleted and created again under its name, and on rx queues a driver
//! enabled after the program was attached (veth installs the program only on the queues it
//! had at attach time; moving the link to the program's twin makes it set up every queue).

use std::{io, os::fd::AsFd as _};

use aya::programs::{ProgramError, Xdp};

use super::{
    AttachMode, AttachedMode, Firewall, LoaderError, PROGRAM, TWIN, TWIN_PIN, load_error, log_tail,
    program_of_name,
};

impl Firewall {
    /// The kernel ids of this firewall's programs: the main one first, then its twin once
    /// loaded. An interface whose XDP program is none of these is not filtered by xdpsieve.
    pub fn program_ids(&self) -> Vec<u32> {
        [PROGRAM, TWIN]
            .iter()
            .filter_map(|name| {
                let program: &Xdp = self.ebpf.program(name)?.try_into().ok()?;
                program.info().ok().map(|info| info.id())
            })
            .collect()
    }

    /// Attaches again to `interface`, which was deleted and now exists again as
    /// `new_ifindex`, in the mode it had, pinned where its link was. The old link died with
    /// its device, so releasing it first opens no window. On failure nothing is attached
    /// and the attachment's record stays, so the watcher can retry.
    pub fn reattach(
        &mut self,
        interface: &str,
        new_ifindex: u32,
    ) -> Result<AttachedMode, LoaderError> {
        let attachment = self
            .attachments
            .iter()
            .find(|a| a.interface == interface)
            .ok_or_else(|| LoaderError::UnknownInterface(interface.into()))?;
        let mode = attachment.mode;
        let pin = attachment.link_pin().to_path_buf();
        let current = super::ifindex_of(interface)?;
        if current != new_ifindex {
            return Err(LoaderError::UnknownInterface(format!(
                "{interface} (ifindex {new_ifindex} is gone again)"
            )));
        }
        self.detach(interface)?;
        let wanted = match mode {
            AttachedMode::Native => AttachMode::Native,
            AttachedMode::Skb => AttachMode::Skb,
        };
        match self.attach(interface, wanted, &pin) {
            Ok(attachment) => Ok(attachment.mode),
            Err(e) => {
                self.keep_record(interface, new_ifindex, mode, &pin);
                Err(e)
            }
        }
    }

    /// Makes the driver set the program up again on every rx queue of `interface` by moving
    /// its link to the firewall's other copy in one step (see `configure::relink` for why).
    pub fn refresh_queues(&mut self, interface: &str) -> Result<(), LoaderError> {
        let failed = |what: String| LoaderError::Attach {
            interface: interface.into(),
            source: ProgramError::IOError(io::Error::other(what)),
        };
        let (ifindex, pin) = self
            .attachments
            .iter()
            .find(|a| a.interface == interface)
            .map(|a| (a.ifindex, a.link_pin().to_path_buf()))
            .ok_or_else(|| LoaderError::UnknownInterface(interface.into()))?;
        let twin = program_of_name(&mut self.ebpf, TWIN)?;
        if twin.fd().is_err() {
            twin.load()
                .map_err(|e| load_error(&e, &log_tail(&e.to_string(), 40)))?;
        }
        let ids = self.program_ids();
        // The link through its pin (a service has no CAP_SYS_ADMIN to list the kernel's
        // links), else among the kernel's links.
        let pinned = crate::configure::relink::pinned_link(&pin)
            .ok()
            .flatten()
            .filter(|(_, info)| info.ifindex == ifindex && ids.contains(&info.program_id));
        let (link, info) = match pinned {
            Some(found) => found,
            None => crate::configure::relink::find_link(ifindex, &ids)
                .map_err(|e| failed(format!("looking for the XDP link: {e}")))?
                .ok_or_else(|| failed("xdpsieve's XDP link is gone".into()))?,
        };
        let (new, old) = if ids.first() == Some(&info.program_id) {
            (TWIN, PROGRAM)
        } else {
            (PROGRAM, TWIN)
        };
        let fd_of = |name: &str| -> Result<std::os::fd::BorrowedFd<'_>, LoaderError> {
            let program: &Xdp = self
                .ebpf
                .program(name)
                .ok_or_else(|| LoaderError::Load(format!("the object has no program `{name}`")))?
                .try_into()
                .map_err(|e: ProgramError| LoaderError::Load(e.to_string()))?;
            let fd = program
                .fd()
                .map_err(|e| LoaderError::Load(format!("{name}: {e}")))?;
            Ok(fd.as_fd())
        };
        crate::configure::relink::update_link(link.as_fd(), fd_of(new)?, fd_of(old)?)
            .map_err(|e| failed(format!("moving the XDP link to program {new}: {e}")))?;
        // The twin pinned beside the link while the link runs it (see TWIN_PIN).
        let twin_pin = pin.with_file_name(TWIN_PIN);
        let _ = std::fs::remove_file(&twin_pin);
        if new == TWIN
            && let Err(e) = program_of_name(&mut self.ebpf, TWIN)?.pin(&twin_pin)
        {
            crate::base::log::warning(format_args!(
                "xdpsieve: warning: pinning the program's twin at {}: {e}; `xdpsieve set` \
                 without CAP_SYS_ADMIN cannot find the program in force on {interface}",
                twin_pin.display()
            ));
        }
        Ok(())
    }
}

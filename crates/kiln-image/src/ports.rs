//! A non-root process cannot bind a port below 1024 unless the runtime allows it: say so before
//! the image ships, not when the container crash-loops with `permission denied`.

use crate::request::ServiceImage;

/// The first port below which binding needs privilege on Linux (`ip_unprivileged_port_start`).
const FIRST_UNPRIVILEGED_PORT: u16 = 1024;

/// A warning when `svc` exposes a port below 1024 while its process does not run as root.
pub fn low_port_warning(svc: &ServiceImage) -> Option<String> {
    let user = svc.config.user.as_str();
    if runs_as_root(user) {
        return None;
    }
    let low: Vec<&str> = svc
        .config
        .exposed_ports
        .iter()
        .map(String::as_str)
        .filter(|p| {
            p.split('/')
                .next()
                .and_then(|n| n.parse::<u16>().ok())
                .is_some_and(|n| n < FIRST_UNPRIVILEGED_PORT)
        })
        .collect();
    if low.is_empty() {
        return None;
    }
    Some(format!(
        "{}: port(s) {} below 1024 but the image runs as user {user} (not root): binding fails with \
         `permission denied` unless the runtime allows it (Docker 20.10+ does by default; Kubernetes \
         does not)\nhint: listen on a port >= 1024 (e.g. 8080) and map it (`docker run -p 80:8080`, a \
         Kubernetes Service `port: 80` with `targetPort: 8080`), or allow it in the runtime (the \
         sysctl `net.ipv4.ip_unprivileged_port_start=0`, or the capability NET_BIND_SERVICE), or run \
         as root (`user = \"0\"` in [services.{}.image])",
        svc.service,
        low.join(", "),
        svc.service
    ))
}

/// Whether an OCI `user` (`uid`, `uid:gid`, `name`, `name:group`; empty = the runtime default,
/// root) runs the process as root.
fn runs_as_root(user: &str) -> bool {
    let who = user.split(':').next().unwrap_or_default();
    who.is_empty() || who == "0" || who == "root"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::BaseChoice;
    use kiln_oci::{Compression, ImageConfig};

    fn svc(user: &str, ports: &[&str]) -> ServiceImage {
        ServiceImage {
            service: "web".into(),
            tag: "v1".into(),
            binaries: Vec::new(),
            base: BaseChoice::Kiln,
            config: ImageConfig {
                user: user.into(),
                exposed_ports: ports.iter().map(|p| (*p).to_owned()).collect(),
                ..ImageConfig::default()
            },
            files: Vec::new(),
            compression: Compression::default(),
        }
    }

    #[test]
    fn issue_9_low_port_as_non_root_warns_with_the_fixes() {
        let w = low_port_warning(&svc("65532:65532", &["80/tcp", "8080/tcp", "443/udp"])).unwrap();
        assert!(
            w.starts_with(
                "web: port(s) 80/tcp, 443/udp below 1024 but the image runs as user 65532:65532"
            ),
            "{w}"
        );
        assert!(w.contains("ip_unprivileged_port_start"), "{w}");
        assert!(w.contains("[services.web.image]"), "{w}");
    }

    #[test]
    fn issue_9_root_or_high_ports_do_not_warn() {
        for user in ["0", "0:0", "root", "root:root", ""] {
            assert_eq!(low_port_warning(&svc(user, &["80/tcp"])), None, "{user}");
        }
        assert_eq!(
            low_port_warning(&svc("65532", &["1024/tcp", "8080/tcp"])),
            None
        );
        assert_eq!(low_port_warning(&svc("nonroot", &[])), None);
    }
}

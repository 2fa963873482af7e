use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use kiln_key::ActionKey;
use kiln_types::Digest;
use prost::Message;

/// Version of the mapping from kiln's action cache to REAPI entries (the `Command` below and how
/// an [`kiln_cache::ActionRecord`] is written into an `ActionResult`). Part of every remote key:
/// bump it when that mapping changes, and old entries are simply never found again.
pub const REMOTE_LAYOUT_VERSION: u32 = 1;

/// The REAPI Action that stands for one kiln action: a `Command` whose arguments name kiln's
/// [`ActionKey`] (`["kiln-action", "<key hex>"]`) and an `Action` over it with the empty input
/// root. Platform properties carry kiln's key version and this crate's layout version.
///
/// The messages are encoded once, deterministically (prost writes fields in tag order and kiln's
/// messages have no maps), so equal keys give equal digests on every machine.
#[derive(Debug, Clone)]
pub struct RemoteAction {
    /// The encoded `Command`.
    pub command: Vec<u8>,
    /// The encoded `Action`.
    pub action: Vec<u8>,
    /// Digest of [`Self::action`]: the ActionCache key.
    pub digest: re::Digest,
}

/// Version of the mapping from go's package cache to REAPI entries (the `Command` of
/// [`RemoteAction::for_go_action`] and its one output file [`GO_PACKAGE_OUTPUT`]). Bump it when
/// that mapping changes.
pub const GO_PACKAGE_LAYOUT_VERSION: u32 = 2;

/// The name of the one output file of a go package entry, whose digest is go's OutputID. A fixed
/// name, so a look-up can ask the server to inline it (`inline_output_files` names paths).
pub const GO_PACKAGE_OUTPUT: &str = "output";

impl RemoteAction {
    /// The Action for `key`.
    pub fn for_key(key: &ActionKey) -> Self {
        let properties = vec![
            re::platform::Property {
                name: "kiln-key-version".into(),
                value: kiln_key::KEY_VERSION.to_string(),
            },
            re::platform::Property {
                name: "kiln-remote-layout".into(),
                value: REMOTE_LAYOUT_VERSION.to_string(),
            },
        ];
        Self::of_command(
            vec!["kiln-action".into(), key.hex()],
            Vec::new(),
            properties,
        )
    }
}

impl RemoteAction {
    /// The Action that stands for one entry of go's package cache: a `Command`
    /// `["kiln-go-package", "<go action ID hex>"]` over the empty input root, whose result has one
    /// output file, [`GO_PACKAGE_OUTPUT`], whose digest is the entry's OutputID. go computes its action ID from every input of
    /// the compile (toolchain, flags, sources, dependencies' outputs), so the ID alone is the key;
    /// the platform property keeps these entries apart from kiln's own and from later layouts.
    pub fn for_go_action(go_action_id: &[u8; 32]) -> Self {
        Self::of_command(
            vec![
                "kiln-go-package".into(),
                Digest::from_raw(*go_action_id).hex(),
            ],
            vec![GO_PACKAGE_OUTPUT.into()],
            vec![re::platform::Property {
                name: "kiln-go-package-layout".into(),
                value: GO_PACKAGE_LAYOUT_VERSION.to_string(),
            }],
        )
    }

    fn of_command(
        arguments: Vec<String>,
        output_files: Vec<String>,
        properties: Vec<re::platform::Property>,
    ) -> Self {
        // `output_files` (deprecated in REAPI 2.1 for `output_paths`, and still the field servers
        // match `inline_output_files` against) is set with `output_paths`, as clients of both
        // versions do.
        #[allow(deprecated)]
        let command = re::Command {
            arguments,
            output_paths: output_files.clone(),
            output_files,
            ..Default::default()
        }
        .encode_to_vec();
        let action = re::Action {
            command_digest: Some(proto_digest_of(&command)),
            // An empty Directory encodes to no bytes: its digest is sha256("") / 0.
            input_root_digest: Some(proto_digest_of(&[])),
            platform: Some(re::Platform { properties }),
            ..Default::default()
        }
        .encode_to_vec();
        let digest = proto_digest_of(&action);
        Self {
            command,
            action,
            digest,
        }
    }
}

/// The REAPI digest of `bytes`.
pub(crate) fn proto_digest_of(bytes: &[u8]) -> re::Digest {
    to_proto(&Digest::of_bytes(bytes), bytes.len() as u64)
}

/// kiln's digest and a size as a REAPI digest.
pub(crate) fn to_proto(digest: &Digest, size: u64) -> re::Digest {
    re::Digest {
        hash: digest.hex(),
        size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
    }
}

/// A REAPI digest as kiln's digest and size; `None` when it is not a sha256 with a sane size.
pub(crate) fn from_proto(d: &re::Digest) -> Option<(Digest, u64)> {
    let digest = Digest::from_hex(&d.hash).ok()?;
    let size = u64::try_from(d.size_bytes).ok()?;
    Some((digest, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> ActionKey {
        ActionKey::from_hex(&blake3::hash(&[b]).to_hex()).unwrap()
    }

    #[test]
    fn equal_keys_equal_action_digests_and_distinct_keys_distinct_ones() {
        let a = RemoteAction::for_key(&key(1));
        assert_eq!(a.digest, RemoteAction::for_key(&key(1)).digest);
        assert_ne!(a.digest, RemoteAction::for_key(&key(2)).digest);
        assert_eq!(a.digest, proto_digest_of(&a.action));
        assert_eq!(a.digest.hash.len(), 64);
    }

    #[test]
    fn action_decodes_to_the_command_of_the_key() {
        let k = key(7);
        let a = RemoteAction::for_key(&k);
        let action = re::Action::decode(&a.action[..]).unwrap();
        assert_eq!(action.command_digest, Some(proto_digest_of(&a.command)));
        assert_eq!(
            action.input_root_digest.unwrap().hash,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let command = re::Command::decode(&a.command[..]).unwrap();
        assert_eq!(command.arguments, vec!["kiln-action".to_string(), k.hex()]);
        let props = action.platform.unwrap().properties;
        assert!(props
            .iter()
            .any(|p| p.name == "kiln-key-version" && p.value == kiln_key::KEY_VERSION.to_string()));
    }

    #[test]
    fn go_package_actions_differ_by_id_and_from_kiln_actions() {
        let a = RemoteAction::for_go_action(&[1; 32]);
        assert_eq!(a.digest, RemoteAction::for_go_action(&[1; 32]).digest);
        assert_ne!(a.digest, RemoteAction::for_go_action(&[2; 32]).digest);
        let command = re::Command::decode(&a.command[..]).unwrap();
        assert_eq!(
            command.arguments,
            vec!["kiln-go-package".to_string(), "01".repeat(32)]
        );
        // The same 32 bytes as a kiln key name another action.
        let as_key = ActionKey::from_hex(&"01".repeat(32)).unwrap();
        assert_ne!(a.digest, RemoteAction::for_key(&as_key).digest);
    }

    #[test]
    fn digests_round_trip_and_reject_garbage() {
        let d = Digest::of_bytes(b"x");
        assert_eq!(from_proto(&to_proto(&d, 1)), Some((d, 1)));
        assert_eq!(
            from_proto(&re::Digest {
                hash: "zz".into(),
                size_bytes: 1
            }),
            None
        );
        assert_eq!(
            from_proto(&re::Digest {
                hash: d.hex(),
                size_bytes: -1
            }),
            None
        );
    }
}

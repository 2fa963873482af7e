//! Service names and list hygiene.
//!
//! A service name becomes a path element (`dist/<service>/...`, `/usr/local/bin/<service>` inside
//! images) and part of image names, so it is checked where it enters: a `[services.NAME]` section
//! here, and names derived from import paths in the planner (with the same function).

use std::collections::BTreeSet;

/// The longest service name accepted, in bytes. Far above real names, well below the 255-byte
/// limit of a path element.
pub const MAX_SERVICE_NAME_LEN: usize = 128;

/// The rule, as shown in error messages.
pub const SERVICE_NAME_RULE: &str = "a service name is 1 to 128 characters from ASCII letters, digits, `.`, `_`, `-`, `+` and `~`, is not `.` or `..`, and does not start with `-` (it becomes the directory dist/<service>/ and the binary's path in images)";

/// Checks a service name; the error says what is wrong with it (the rule is [`SERVICE_NAME_RULE`]).
///
/// The allowed characters are those Go allows in an import path element, so every name derived
/// from a valid import path passes, and none can leave the directory it is joined to.
pub fn check_service_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > MAX_SERVICE_NAME_LEN {
        return Err(format!(
            "it is {} bytes long, more than {MAX_SERVICE_NAME_LEN}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("`{name}` names a directory, not a service"));
    }
    if name.starts_with('-') {
        return Err("it starts with `-`".into());
    }
    match name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '~')))
    {
        Some(c @ ('/' | '\\')) => Err(format!(
            "it contains `{c}`: a service name is one path element, not a path"
        )),
        Some(c) => Err(format!("it contains {c:?}")),
        None => Ok(()),
    }
}

/// Removes repeated items, keeping the first occurrence of each in its place.
///
/// Lists of platforms, services and patterns name sets: a repeat would build the same output twice,
/// concurrently, into one path.
pub fn dedup_first_seen<T: Ord + Clone>(items: &mut Vec<T>) {
    let mut seen = BTreeSet::new();
    items.retain(|x| seen.insert(x.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_8_service_names_cannot_leave_their_directory() {
        for ok in [
            "api", "my-svc", "svc_2", "a+b", "v1.2", "_tool", ".hidden", "x~y", "A",
        ] {
            assert_eq!(check_service_name(ok), Ok(()), "{ok}");
        }
        let long = "a".repeat(MAX_SERVICE_NAME_LEN + 1);
        for (bad, why) in [
            ("../../x", "contains `/`"),
            ("..", "names a directory"),
            (".", "names a directory"),
            ("a/b", "contains `/`"),
            ("a\\b", "contains `\\`"),
            ("", "empty"),
            ("-v", "starts with `-`"),
            ("my svc", "contains ' '"),
            ("café", "contains 'é'"),
            ("a\0b", "contains '\\0'"),
            (long.as_str(), "more than 128"),
        ] {
            let e = check_service_name(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert_eq!(
            check_service_name(&"a".repeat(MAX_SERVICE_NAME_LEN)),
            Ok(())
        );
    }

    #[test]
    fn issue_8_dedup_keeps_first_seen_order() {
        let mut v = vec!["b", "a", "b", "c", "a", "b"];
        dedup_first_seen(&mut v);
        assert_eq!(v, ["b", "a", "c"]);
    }
}

//! iptables rules as scenario files write them (a router's `iptables`, the
//! `iptables` fault): words with placeholders, `{dev:NET}` (the node's own
//! interface on network NET) and `{ip:NODE}` (NODE's address), filled where
//! the rule runs (`run::roles::router`) or is written out (`connlab compose`).

/// The names in a rule's `{kind:NAME}` placeholders.
pub fn placeholders(rule: &str, kind: &str) -> Vec<String> {
    let open = format!("{{{kind}:");
    rule.match_indices(&open)
        .filter_map(|(at, _)| {
            let rest = &rule[at + open.len()..];
            Some(rest[..rest.find('}')?].to_string())
        })
        .collect()
}

/// One rule as an iptables command, each word through [`fill_word`].
pub fn fill(
    rule: &str,
    device: &dyn Fn(&str) -> Option<String>,
    ip: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    std::iter::once("iptables".to_string())
        .chain(rule.split_whitespace().map(|w| fill_word(w, device, ip)))
        .collect()
}

/// `{dev:NET}` replaced by `device(NET)` and `{ip:NODE}` by `ip(NODE)`; a
/// placeholder they do not know is left as it is.
pub fn fill_word(
    word: &str,
    device: &dyn Fn(&str) -> Option<String>,
    ip: &dyn Fn(&str) -> Option<String>,
) -> String {
    let mut word = word.to_string();
    for (open, resolve) in [("{dev:", device), ("{ip:", ip)] {
        let mut from = 0;
        while let Some(at) = word[from..].find(open).map(|i| i + from) {
            let Some(len) = word[at..].find('}') else {
                break;
            };
            let name = word[at + open.len()..at + len].to_string();
            match resolve(&name) {
                Some(value) => {
                    word.replace_range(at..=at + len, &value);
                    from = at + value.len();
                }
                None => from = at + len + 1,
            }
        }
    }
    word
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_devices_and_addresses() {
        let rule = "-t nat -A PREROUTING -i {dev:outside} -j DNAT --to-destination {ip:gwa}:10000";
        assert_eq!(placeholders(rule, "ip"), ["gwa"]);
        assert_eq!(placeholders(rule, "dev"), ["outside"]);
        let device = |n: &str| (n == "outside").then(|| "eth1".to_string());
        let ip = |n: &str| (n == "gwa").then(|| "172.21.0.3".to_string());
        assert_eq!(
            fill(rule, &device, &ip).join(" "),
            "iptables -t nat -A PREROUTING -i eth1 -j DNAT --to-destination 172.21.0.3:10000"
        );
    }

    #[test]
    fn an_unknown_placeholder_is_left_as_it_is() {
        let none = |_: &str| None;
        assert_eq!(
            fill("-o {dev:elsewhere} -j MASQUERADE", &none, &none).join(" "),
            "iptables -o {dev:elsewhere} -j MASQUERADE"
        );
    }
}

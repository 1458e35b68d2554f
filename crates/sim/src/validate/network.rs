//! NetworkPolicies, as upstream `ValidateNetworkPolicy` checks the parts used here.

use ipnet::IpNet;
use serde_json::{Value, json};

use crate::status::{Cause, field_invalid, field_required};

/// The ipBlocks of a NetworkPolicy's peers, as upstream `ValidateIPBlock` checks them:
/// `cidr` a valid CIDR, every `except` a valid CIDR strictly inside it.
pub(super) fn network_policy(obj: &Value, out: &mut Vec<Cause>) {
    const INVALID: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";
    for (rules, peers) in [("ingress", "from"), ("egress", "to")] {
        let Some(rules_list) = obj
            .pointer(&format!("/spec/{rules}"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        for (i, rule) in rules_list.iter().enumerate() {
            let Some(peer_list) = rule.get(peers).and_then(Value::as_array) else {
                continue;
            };
            for (j, peer) in peer_list.iter().enumerate() {
                let Some(block) = peer.get("ipBlock") else {
                    continue;
                };
                let at = format!("spec.{rules}[{i}].{peers}[{j}].ipBlock");
                let cidr = block
                    .get("cidr")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if cidr.is_empty() {
                    out.push(field_required(&format!("{at}.cidr"), ""));
                    continue;
                }
                let Some(outer) = cidr.parse::<IpNet>().ok() else {
                    out.push(field_invalid(&format!("{at}.cidr"), &json!(cidr), INVALID));
                    continue;
                };
                let excepts = block.get("except").and_then(Value::as_array);
                for (k, except) in excepts.into_iter().flatten().enumerate() {
                    let path = format!("{at}.except[{k}]");
                    let text = except.as_str().unwrap_or_default();
                    match text.parse::<IpNet>() {
                        Err(_) => out.push(field_invalid(&path, except, INVALID)),
                        Ok(inner) if !outer.contains(&inner) || inner.trunc() == outer.trunc() => {
                            out.push(field_invalid(
                                &path,
                                except,
                                "must be a strict subset of `cidr`",
                            ))
                        }
                        Ok(_) => {}
                    }
                }
            }
        }
    }
}

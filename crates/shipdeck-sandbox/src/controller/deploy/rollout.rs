//! The rolling-update arithmetic of Kubernetes' Deployment controller, as pure functions:
//! how far maxSurge/maxUnavailable let a rollout go, how many replicas the new and old
//! ReplicaSets get next, and the template hash that names a ReplicaSet. No store, no time:
//! the controller feeds it counts and applies what it answers.

use serde_json::Value;

/// Resolve an int-or-percent field against the desired replica count, as
/// `intstr.GetScaledValueFromIntOrPercent` does (percentages round up or down).
pub fn scaled_value(
    field: Option<&Value>,
    total: i64,
    default_percent: i64,
    round_up: bool,
) -> i64 {
    let percent = |p: i64| {
        let n = p * total;
        if round_up {
            (n + 99).div_euclid(100)
        } else {
            n.div_euclid(100)
        }
    };
    match field {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0).max(0),
        Some(Value::String(s)) => match s.strip_suffix('%').map(str::trim) {
            Some(p) => percent(p.parse::<i64>().unwrap_or(default_percent).max(0)),
            None => s.trim().parse::<i64>().unwrap_or(0).max(0),
        },
        _ => percent(default_percent),
    }
}

/// maxSurge (rounded up) and maxUnavailable (rounded down), both 25% by default; when both
/// resolve to zero, maxUnavailable becomes 1 so the rollout can move at all.
pub fn surge_and_unavailable(rolling_update: Option<&Value>, replicas: i64) -> (i64, i64) {
    let surge = scaled_value(
        rolling_update.and_then(|r| r.get("maxSurge")),
        replicas,
        25,
        true,
    );
    let mut unavailable = scaled_value(
        rolling_update.and_then(|r| r.get("maxUnavailable")),
        replicas,
        25,
        false,
    );
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable.min(replicas))
}

/// Replica counts of one ReplicaSet as the rollout maths needs them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RsCounts {
    /// spec.replicas
    pub desired: i64,
    /// pods ready for at least minReadySeconds
    pub available: i64,
}

/// The new ReplicaSet's next size (`NewRSNewReplicas` for RollingUpdate).
pub fn new_rs_replicas(replicas: i64, surge: i64, new: RsCounts, all: &[RsCounts]) -> i64 {
    if new.desired > replicas {
        return replicas;
    }
    let max_total = replicas + surge;
    let current: i64 = all.iter().map(|r| r.desired).sum();
    if current >= max_total {
        return new.desired;
    }
    let up = (max_total - current).min(replicas - new.desired).max(0);
    new.desired + up
}

/// How many replicas each old ReplicaSet keeps (`reconcileOldReplicaSets`): first drop
/// old pods that are not available anyway, then scale down only as far as
/// `replicas - maxUnavailable` available pods remain. `old` is ordered oldest first.
pub fn old_rs_replicas(
    replicas: i64,
    max_unavailable: i64,
    new: RsCounts,
    old: &[RsCounts],
) -> Vec<i64> {
    let mut next: Vec<i64> = old.iter().map(|r| r.desired).collect();
    let old_total: i64 = next.iter().sum();
    if old_total == 0 {
        return next;
    }
    let all_pods = old_total + new.desired;
    let min_available = replicas - max_unavailable;
    let new_unavailable = (new.desired - new.available).max(0);
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return next;
    }
    // Unhealthy old pods first: removing them costs no availability.
    let mut budget = max_scaled_down;
    for (i, rs) in old.iter().enumerate() {
        if budget <= 0 {
            break;
        }
        let unhealthy = (next[i] - rs.available).max(0);
        let cut = unhealthy.min(budget);
        next[i] -= cut;
        budget -= cut;
    }
    // Then available ones, while enough stay available.
    let available: i64 = new.available
        + old
            .iter()
            .zip(&next)
            .map(|(r, n)| r.available.min(*n))
            .sum::<i64>();
    let mut remaining = available - min_available;
    for n in next.iter_mut() {
        if remaining <= 0 {
            break;
        }
        let cut = (*n).min(remaining);
        *n -= cut;
        remaining -= cut;
    }
    next
}

/// The pod-template-hash: FNV-1a 32 of the template (keys in a canonical order) plus the
/// collision count, spelled in Kubernetes' "safe" alphabet so it never forms words.
pub fn template_hash(template: &Value, collision_count: u32) -> String {
    let mut bytes = Vec::new();
    canonical(template, &mut bytes);
    bytes.extend_from_slice(collision_count.to_string().as_bytes());
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    safe_encode(&h.to_string())
}

const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Kubernetes' `rand.SafeEncodeString`: each byte mapped into an alphabet without vowels.
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

fn canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for k in keys {
                out.extend_from_slice(k.as_bytes());
                out.push(b':');
                canonical(&map[k], out);
                out.push(b',');
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for i in items {
                canonical(i, out);
                out.push(b',');
            }
            out.push(b']');
        }
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn percentages_round_like_kubernetes() {
        // 25% of 3: surge rounds up to 1, unavailable down to 0.
        assert_eq!(surge_and_unavailable(None, 3), (1, 0));
        assert_eq!(surge_and_unavailable(None, 10), (3, 2));
        let ru = json!({"maxSurge": 0, "maxUnavailable": "0%"});
        assert_eq!(surge_and_unavailable(Some(&ru), 4), (0, 1));
        let ru = json!({"maxSurge": "50%", "maxUnavailable": 2});
        assert_eq!(surge_and_unavailable(Some(&ru), 3), (2, 2));
    }

    #[test]
    fn new_rs_grows_within_surge() {
        let old = RsCounts {
            desired: 3,
            available: 3,
        };
        let new = RsCounts {
            desired: 0,
            available: 0,
        };
        assert_eq!(new_rs_replicas(3, 1, new, &[old, new]), 1);
        let new = RsCounts {
            desired: 1,
            available: 0,
        };
        assert_eq!(new_rs_replicas(3, 1, new, &[old, new]), 1);
        let old = RsCounts {
            desired: 2,
            available: 2,
        };
        assert_eq!(new_rs_replicas(3, 1, new, &[old, new]), 2);
    }

    #[test]
    fn old_rs_shrinks_only_as_availability_allows() {
        // 3 replicas, maxUnavailable 0: the old set waits for a new pod to be available.
        let new = RsCounts {
            desired: 1,
            available: 0,
        };
        let old = [RsCounts {
            desired: 3,
            available: 3,
        }];
        assert_eq!(old_rs_replicas(3, 0, new, &old), vec![3]);
        let new = RsCounts {
            desired: 1,
            available: 1,
        };
        assert_eq!(old_rs_replicas(3, 0, new, &old), vec![2]);
        // Unavailable old pods go first, without touching availability.
        let new = RsCounts {
            desired: 1,
            available: 1,
        };
        let old = [RsCounts {
            desired: 3,
            available: 2,
        }];
        assert_eq!(old_rs_replicas(3, 0, new, &old), vec![2]);
        // maxUnavailable 1 lets one available old pod go at once.
        let new = RsCounts {
            desired: 0,
            available: 0,
        };
        let old = [RsCounts {
            desired: 4,
            available: 4,
        }];
        assert_eq!(old_rs_replicas(4, 1, new, &old), vec![3]);
    }

    #[test]
    fn hash_is_stable_and_safe() {
        let t = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"image": "a:1"}]}});
        let u = json!({"spec": {"containers": [{"image": "a:1"}]}, "metadata": {"labels": {"app": "web"}}});
        assert_eq!(template_hash(&t, 0), template_hash(&u, 0));
        assert_ne!(template_hash(&t, 0), template_hash(&t, 1));
        assert!(
            template_hash(&t, 0)
                .bytes()
                .all(|b| SAFE_ALPHABET.contains(&b))
        );
    }
}

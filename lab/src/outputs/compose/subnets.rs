//! Each compose network's fixed /24, so a checked-in file names the same
//! addresses on every regeneration and two projects can be up at once.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::scenario::Scenario;

/// A /24 per (scenario, variant, network), from 10.128.0.0/9: a stable hash
/// of the three names, so a new scenario leaves the other files as they are
/// (unless it takes a slot another file then has to give up: the next free
/// /24 on a collision, in name order), and distinct, so two compose projects
/// can be up at once. Docker's default pools (172.17/12, 192.168/16) and the
/// lab's own networks never use 10/8.
pub struct Subnets(BTreeMap<(String, String, String), Ipv4Addr>);

const SLOTS: u32 = 1 << 15;

impl Subnets {
    pub fn assign(scenarios: &[Scenario]) -> Subnets {
        let mut taken = BTreeSet::new();
        let mut subnets = BTreeMap::new();
        for s in scenarios {
            for v in &s.variants {
                for n in &v.networks {
                    let key = format!("{}/{}/{}", s.name, v.name, n);
                    let mut slot = (fnv1a(key.as_bytes()) % u64::from(SLOTS)) as u32;
                    while !taken.insert(slot) {
                        slot = (slot + 1) % SLOTS;
                    }
                    let base = Ipv4Addr::from(0x0a80_0000 | (slot << 8));
                    subnets.insert((s.name.clone(), v.name.clone(), n.clone()), base);
                }
            }
        }
        Subnets(subnets)
    }

    /// The network's x.y.z.0.
    pub(super) fn of(&self, scenario: &str, variant: &str, network: &str) -> Option<Ipv4Addr> {
        let key = (scenario.into(), variant.into(), network.into());
        self.0.get(&key).copied()
    }
}

/// FNV-1a, 64 bits: stable across Rust versions (std's hasher is not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

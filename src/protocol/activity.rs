//! Activities (operations) and protocol generations, with their canonical names.

use serde::{Serialize, Serializer};

/// A KooGallery operation under its canonical name. Canonical names are the V2 names; later generations map onto
/// them (V1 `upgrade` → `upgradeInstance`), so routes and the upstream contract never depend on the generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Activity {
    NewInstance,
    QueryInstance,
    RefreshInstance,
    UpdateInstanceStatus,
    ReleaseInstance,
    UpgradeInstance,
    OrderNotify,
    /// V1 only: the subscription expired. V2 expresses this as `updateInstanceStatus` with `FREEZE`.
    ExpireInstance,
}

impl Activity {
    /// Every activity, in protocol-table order.
    pub const ALL: [Activity; 8] = [
        Activity::NewInstance,
        Activity::QueryInstance,
        Activity::RefreshInstance,
        Activity::UpdateInstanceStatus,
        Activity::ReleaseInstance,
        Activity::UpgradeInstance,
        Activity::OrderNotify,
        Activity::ExpireInstance,
    ];

    /// The canonical name, used in the upstream contract, in route configuration and as a metric label.
    pub const fn name(self) -> &'static str {
        match self {
            Activity::NewInstance => "newInstance",
            Activity::QueryInstance => "queryInstance",
            Activity::RefreshInstance => "refreshInstance",
            Activity::UpdateInstanceStatus => "updateInstanceStatus",
            Activity::ReleaseInstance => "releaseInstance",
            Activity::UpgradeInstance => "upgradeInstance",
            Activity::OrderNotify => "orderNotify",
            Activity::ExpireInstance => "expireInstance",
        }
    }

    /// Position in [`Activity::ALL`], for tables indexed by activity.
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|a| *a == self).unwrap_or(0)
    }

    /// Looks up a canonical name (exact, case-sensitive as on the wire).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The activity carried by a V2 `activity` field (`expireInstance` is V1 only).
    pub fn from_v2(name: &str) -> Option<Self> {
        Self::from_name(name).filter(|a| *a != Activity::ExpireInstance)
    }

    /// The activity carried by a V1 `activity` parameter; V1 names map onto the canonical ones.
    pub fn from_v1(name: &str) -> Option<Self> {
        match name {
            "newInstance" => Some(Activity::NewInstance),
            "refreshInstance" => Some(Activity::RefreshInstance),
            "expireInstance" => Some(Activity::ExpireInstance),
            "releaseInstance" => Some(Activity::ReleaseInstance),
            "upgrade" => Some(Activity::UpgradeInstance),
            "instanceStatus" => Some(Activity::UpdateInstanceStatus),
            "queryInstance" => Some(Activity::QueryInstance),
            _ => None,
        }
    }
}

impl Serialize for Activity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Which generation of the protocol a call used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Generation {
    /// `GET` with every field in the query, signed by `authToken`.
    V1,
    /// Signed query (`signature`, `timestamp`, `nonce`) over a JSON body.
    V2,
}

impl Generation {
    pub const fn name(self) -> &'static str {
        match self {
            Generation::V1 => "v1",
            Generation::V2 => "v2",
        }
    }
}

impl Serialize for Generation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_round_trip() {
        for a in Activity::ALL {
            assert_eq!(Activity::from_name(a.name()), Some(a));
        }
    }

    #[test]
    fn v1_names_map_onto_canonical_ones() {
        assert_eq!(
            Activity::from_v1("upgrade"),
            Some(Activity::UpgradeInstance)
        );
        assert_eq!(
            Activity::from_v1("instanceStatus"),
            Some(Activity::UpdateInstanceStatus)
        );
        assert_eq!(
            Activity::from_v1("expireInstance"),
            Some(Activity::ExpireInstance)
        );
        assert_eq!(Activity::from_v1("upgradeInstance"), None);
        assert_eq!(Activity::from_v1("orderNotify"), None);
        assert_eq!(Activity::from_v2("expireInstance"), None);
    }

    #[test]
    fn names_are_case_sensitive_and_closed() {
        for s in ["NewInstance", "newinstance", "upgrade", "", "newInstance "] {
            assert_eq!(Activity::from_v2(s), None, "{s:?}");
        }
    }
}

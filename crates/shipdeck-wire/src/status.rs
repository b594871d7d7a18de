//! Sync, health and operation status values as Argo CD defines them, read leniently: a value
//! shipdeck does not know becomes `Unknown` instead of failing the whole object.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

macro_rules! lenient_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident),+ $(,)? } fallback $fallback:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),+ }
            }
            pub fn parse(s: &str) -> Self {
                match s { $(stringify!($variant) => $name::$variant,)+ _ => $name::$fallback }
            }
        }

        impl Default for $name {
            fn default() -> Self { $name::$fallback }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok($name::parse(&s))
            }
        }
    };
}

lenient_enum!(
    /// Application or resource sync status.
    SyncStatus { Synced, OutOfSync, Unknown } fallback Unknown
);

lenient_enum!(
    /// Health, declared from best to worst as Argo CD orders it.
    HealthStatus { Healthy, Suspended, Progressing, Missing, Degraded, Unknown } fallback Unknown
);

lenient_enum!(
    /// Phase of a sync or rollback operation.
    OperationPhase { Running, Terminating, Failed, Error, Succeeded } fallback Error
);

lenient_enum!(
    /// Outcome of one resource in a sync.
    ResultCode { Synced, SyncFailed, Pruned, PruneSkipped } fallback SyncFailed
);

impl OperationPhase {
    pub fn is_done(self) -> bool {
        matches!(
            self,
            OperationPhase::Failed | OperationPhase::Error | OperationPhase::Succeeded
        )
    }
}

impl HealthStatus {
    /// The worse of two health values, for aggregating resources into an app.
    pub fn worst(self, other: HealthStatus) -> HealthStatus {
        // Unknown is ordered last but Argo CD treats Degraded/Missing as worse than Unknown
        // when aggregating; rank explicitly.
        fn rank(h: HealthStatus) -> u8 {
            match h {
                HealthStatus::Healthy => 0,
                HealthStatus::Suspended => 1,
                HealthStatus::Progressing => 2,
                HealthStatus::Unknown => 3,
                HealthStatus::Missing => 4,
                HealthStatus::Degraded => 5,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

//! The names of the domain's choices (trackers, estimators, guest page
//! sizes). Each such enum has one table, its [`Named`] impl, and
//! everything that spells a value reads it: parsing (`FromStr`), printing
//! (`Display`), serde, the job lists a sweep emits and the CLI, which
//! builds its possible values and `--help` lines from it (src/cli.rs).

/// An enum of choices with one name and one line of help per value.
pub trait Named: Copy + Eq + 'static {
    /// What a value is, for errors: "tracker".
    const WHAT: &'static str;
    /// Every value, in the order `--help` lists them.
    const ALL: &'static [Self];

    /// The name a user types and every output spells.
    fn name(self) -> &'static str;

    /// One line for `--help`.
    fn help(self) -> &'static str;
}

/// A name no value of an enum has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a {what} (one of: {choices})")]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
    pub choices: String,
}

/// The value named `name`.
pub fn parse<T: Named>(name: &str) -> Result<T, UnknownName> {
    T::ALL
        .iter()
        .copied()
        .find(|v| v.name() == name)
        .ok_or_else(|| UnknownName {
            what: T::WHAT,
            name: name.to_string(),
            choices: T::ALL
                .iter()
                .map(|v| v.name())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// `Display`, `FromStr` and serde (as the name) for a [`Named`] enum,
/// all through its table. The enum derives serde with
/// `#[serde(try_from = "String", into = "&'static str")]`.
macro_rules! named_impls {
    ($t:ty) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::named::Named::name(*self))
            }
        }

        impl std::str::FromStr for $t {
            type Err = $crate::named::UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $crate::named::parse(s)
            }
        }

        impl TryFrom<String> for $t {
            type Error = $crate::named::UnknownName;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                $crate::named::parse(&s)
            }
        }

        impl From<$t> for &'static str {
            fn from(v: $t) -> &'static str {
                $crate::named::Named::name(v)
            }
        }
    };
}
pub(crate) use named_impls;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every value's name is unique, parses back to it, is what `Display`
    /// prints and what serde writes and reads.
    pub(crate) fn check_table<T>()
    where
        T: Named
            + std::fmt::Debug
            + std::fmt::Display
            + std::str::FromStr<Err = UnknownName>
            + serde::Serialize
            + serde::de::DeserializeOwned,
    {
        for &v in T::ALL {
            assert_eq!(parse::<T>(v.name()), Ok(v));
            assert_eq!(v.name().parse::<T>(), Ok(v));
            assert_eq!(v.to_string(), v.name());
            let json = serde_json::to_string(&v).expect("serialize");
            assert_eq!(json, format!("\"{}\"", v.name()));
            assert_eq!(serde_json::from_str::<T>(&json).expect("deserialize"), v);
            assert!(!v.help().is_empty(), "{v:?}");
            let same = T::ALL.iter().filter(|w| w.name() == v.name()).count();
            assert_eq!(same, 1, "{v:?}");
        }
        let err = parse::<T>("no-such-name").expect_err("unknown");
        assert_eq!(err.what, T::WHAT);
        assert!(serde_json::from_str::<T>("\"no-such-name\"").is_err());
    }
}

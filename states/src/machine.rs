//! The `machine!` macro: from the one table at the bottom of `lib.rs`, the
//! transition methods, [`Status`](crate::Status), [`Kind`](crate::Kind),
//! [`AnyState`](crate::AnyState) and [`EDGES`](crate::EDGES). Kept apart so
//! `lib.rs` reads as the states and their table.

/// Declares the machine: the statuses, the states (each a type, with the
/// status it reports: two types can report one status), the states held
/// inside one step (not in [`AnyState`](crate::AnyState)), the entry, every
/// transition, the handovers (transitions that also return what the state
/// held) and the exits, each exactly once. Generates the methods,
/// [`Status`](crate::Status), [`Kind`](crate::Kind), [`AnyState`](crate::AnyState) and
/// [`EDGES`](crate::EDGES).
macro_rules! machine {
    (
        statuses { $( $status:ident = $snake:literal ),* $(,)? }
        states { $( $state:ident : $reports:ident ),* $(,)? }
        held { $( $held:ident : $hreports:ident ),* $(,)? }
        start $first:ident $start_label:literal fn $start:ident() $start_body:block
        edges {
            $( $from:ident -> $to:ident $label:literal
               fn $method:ident($self_:ident $(, $arg:ident : $ty:ty)*) $body:block )*
        }
        handovers {
            $( $hfrom:ident -> $hto:ident $hlabel:literal
               fn $hmethod:ident($hself:ident) -> $hout:ty $hbody:block )*
        }
        exits {
            $( $xfrom:ident $xlabel:literal fn $xmethod:ident($xself:ident) $xbody:block )*
        }
    ) => {
        /// The name of a state, without its data: what `/status` reports.
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash,
            serde::Serialize, serde::Deserialize,
            strum::Display, strum::EnumString, strum::IntoStaticStr, strum::EnumIter,
        )]
        #[serde(rename_all = "snake_case")]
        #[strum(serialize_all = "snake_case")]
        pub enum Status {
            $(
                #[doc = concat!("Reported as `", $snake, "`.")]
                $status,
            )*
        }

        impl Status {
            /// Every status, in declaration order.
            pub const ALL: &'static [Status] = &[$(Status::$status),*];

            /// The status as the status view of the diagram names it
            /// (`ConfigurationPending`, as the reference's diagram does).
            pub fn name(self) -> &'static str {
                match self {
                    $(Status::$status => stringify!($status),)*
                }
            }
        }

        // Keep the explicit snake_case names and strum's derived ones in step.
        #[cfg(test)]
        const _SNAKE_NAMES: &[(Status, &str)] = &[$((Status::$status, $snake)),*];

        /// Which state type, without its data: a node of the diagram.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Kind {
            $(
                #[doc = concat!("See [`", stringify!($state), "`].")]
                $state,
            )*
            $(
                #[doc = concat!("See [`", stringify!($held), "`] (held inside a step).")]
                $held,
            )*
        }

        impl Kind {
            /// Every state type, in declaration order (the held ones last).
            pub const ALL: &'static [Kind] = &[$(Kind::$state,)* $(Kind::$held,)*];

            /// The Rust type name of the state, as used in the diagram.
            pub fn type_name(self) -> &'static str {
                match self {
                    $(Kind::$state => stringify!($state),)*
                    $(Kind::$held => stringify!($held),)*
                }
            }

            /// The status the state reports.
            pub fn status(self) -> Status {
                match self {
                    $(Kind::$state => Status::$reports,)*
                    $(Kind::$held => Status::$hreports,)*
                }
            }
        }

        impl fmt::Display for Kind {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.type_name())
            }
        }

        /// Any state of the machine the driver loop holds between steps (a
        /// held state is not one: it lives inside one step).
        pub enum AnyState<C: Compute> {
            $(
                #[doc = concat!("The compute is in [`", stringify!($state), "`].")]
                $state($state<C>),
            )*
        }

        impl<C: Compute> AnyState<C> {
            /// The type of the held state.
            pub fn kind(&self) -> Kind {
                match self {
                    $(AnyState::$state(_) => Kind::$state,)*
                }
            }

            /// The status of the held state.
            pub fn status(&self) -> Status {
                self.kind().status()
            }
        }

        $(
            impl<C: Compute> From<$state<C>> for AnyState<C> {
                fn from(state: $state<C>) -> Self {
                    AnyState::$state(state)
                }
            }
        )*

        impl<C: Compute> $first<C> {
            #[doc = concat!("`[*] --> ", stringify!($first), "`: ", $start_label, ".")]
            pub fn $start() -> $first<C> $start_body
        }

        $(
            impl<C: Compute> $from<C> {
                #[doc = concat!("`", stringify!($from), " --> ", stringify!($to), "`: ", $label, ".")]
                pub fn $method($self_ $(, $arg: $ty)*) -> $to<C> $body
            }
        )*

        $(
            impl<C: Compute> $hfrom<C> {
                #[doc = concat!("`", stringify!($hfrom), " --> ", stringify!($hto), "`: ", $hlabel, ".")]
                #[doc = ""]
                #[doc = concat!("Returns the `", stringify!($hout), "` the state held, with the next state, which holds none.")]
                pub fn $hmethod($hself) -> ($hout, $hto<C>) $hbody
            }
        )*

        $(
            impl<C: Compute> $xfrom<C> {
                #[doc = concat!("`", stringify!($xfrom), " --> [*]`: ", $xlabel, ".")]
                pub fn $xmethod($xself) -> Exited $xbody
            }
        )*

        /// Every transition of the machine, in declaration order.
        pub const EDGES: &[Edge] = &[
            Edge {
                from: Node::Start,
                to: Node::State(Kind::$first),
                method: stringify!($start),
                label: $start_label,
            },
            $(
                Edge {
                    from: Node::State(Kind::$from),
                    to: Node::State(Kind::$to),
                    method: stringify!($method),
                    label: $label,
                },
            )*
            $(
                Edge {
                    from: Node::State(Kind::$hfrom),
                    to: Node::State(Kind::$hto),
                    method: stringify!($hmethod),
                    label: $hlabel,
                },
            )*
            $(
                Edge {
                    from: Node::State(Kind::$xfrom),
                    to: Node::End,
                    method: stringify!($xmethod),
                    label: $xlabel,
                },
            )*
        ];
    };
}

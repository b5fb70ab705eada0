//! The machine around the store: what the appliance's PID 1 knows and the S3 layer reports or
//! waits for — whether the wall clock is synchronised, the network's state. `hoard serve` on a
//! developer's machine has no [`Host`] and trusts the operating system's clock.
//!
//! Must not import anything of this crate: the host is below every layer, and its status is
//! plain data that `ops::admin` writes into `GET /_hoard/status`.

/// Facts the S3 layer needs from the machine. Implemented by the firmware.
pub trait Host: Send + Sync + std::fmt::Debug {
    /// Whether the wall clock may be trusted for decisions that cannot be undone: lifecycle
    /// expiry waits while this is false (and Object Lock's retention will). Signed requests
    /// are judged by the clock as it is, as S3 does.
    fn clock_trusted(&self) -> bool;

    /// Sections for `GET /_hoard/status`, after the store's own.
    fn status(&self) -> Vec<StatusSection>;
}

/// One element of the status document: `<Name><Field>value</Field>...<Child>...</Child></Name>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusSection {
    /// The element's name (`Time`, `Network`).
    pub name: &'static str,
    /// Its text children, in order.
    pub fields: Vec<(&'static str, String)>,
    /// Its element children, after the fields.
    pub children: Vec<StatusSection>,
}

impl StatusSection {
    /// A section named `name` with nothing in it yet.
    pub fn new(name: &'static str) -> StatusSection {
        StatusSection {
            name,
            ..StatusSection::default()
        }
    }

    /// Adds a text child.
    pub fn field(mut self, name: &'static str, value: impl ToString) -> StatusSection {
        self.fields.push((name, value.to_string()));
        self
    }

    /// Adds an element child.
    pub fn child(mut self, child: StatusSection) -> StatusSection {
        self.children.push(child);
        self
    }
}

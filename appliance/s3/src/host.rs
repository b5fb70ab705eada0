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

    /// The settings group `name` (`time`, `network`) as JSON, for
    /// `GET /_hoard/settings/<name>`; `None`: the host has no such group.
    fn settings(&self, name: &str) -> Option<String> {
        let _ = name;
        None
    }

    /// Changes the settings group `name` from a request's query parameters, keeps the result
    /// and puts it in force; returns it as JSON. Runs on a blocking thread (it writes the
    /// store).
    ///
    /// Errors: `None` for a group the host does not have; `Some(message)` for a refused
    /// parameter, naming it.
    fn change_settings(
        &self,
        name: &str,
        query: &[(String, String)],
    ) -> Result<String, Option<String>> {
        let _ = (name, query);
        Err(None)
    }

    /// Turns the locate LED of HDD bay `bay` on or off (`PUT /_hoard/bays/<bay>/locate`).
    /// Runs on a blocking thread.
    ///
    /// Errors: `None` when the host has no LEDs at all; `Some(message)` when this bay has
    /// none or the write failed.
    fn locate(&self, bay: u32, on: bool) -> Result<(), Option<String>> {
        let _ = (bay, on);
        Err(None)
    }

    /// Called every second by a task of the server's runtime while it serves: a heartbeat
    /// that stops when the runtime is wedged (the appliance's watchdog watches it).
    fn serving(&self) {}

    /// Called once when the server stops accepting connections (a shutdown began): the
    /// heartbeat ends after this without anything being wrong.
    fn shutting_down(&self) {}
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

//! The one source for the keys: the status bar and the `?` overlay are made from this table, so
//! help cannot drift from behaviour.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key asks for (verb, then noun).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Next step (or section, on the overview).
    SelectNext,
    /// Previous step (or section).
    SelectPrevious,
    /// Next section's screen.
    ShowNextSection,
    /// Previous section's screen.
    ShowPreviousSection,
    /// The overview of all sections.
    ShowOverview,
    /// Steps ↔ output.
    FocusNextPane,
    /// Run the selected step (on a manual step: tick it; on the overview: open the section).
    RunStep,
    /// Run every automated step of the section.
    RunSection,
    /// Cancel the selected step (kills its processes).
    CancelStep,
    /// Tick a manual step, with a note.
    TickStep,
    /// Skip a step, with a reason.
    SkipStep,
    /// Sign a sign-off step.
    SignOff,
    /// Watching: approve a step waiting for a second person.
    Approve,
    /// Watching: reject a step waiting for a second person, with a reason.
    Reject,
    /// Output: older lines.
    ScrollOutputUp,
    /// Output: newer lines.
    ScrollOutputDown,
    /// Output: a page older.
    ScrollOutputPageUp,
    /// Output: a page newer.
    ScrollOutputPageDown,
    /// Output: jump to the newest line and follow.
    FollowOutput,
    /// Live panels on a narrow screen.
    TogglePanels,
    /// This help.
    ToggleHelp,
    /// Close a dialog, or go back to the overview.
    Back,
    /// Leave (asks when a step is running).
    Quit,
}

/// A key, its action, and how help names it.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    /// The keys (the first is the one shown).
    pub keys: &'static [KeyCode],
    /// What they do.
    pub action: Action,
    /// How the key is written in help.
    pub key_label: &'static str,
    /// A word or two for the status bar (empty: help only).
    pub short: &'static str,
    /// One line for the help overlay.
    pub help: &'static str,
}

/// Every key of the wizard (outside text fields, where keys type).
pub const BINDINGS: &[Binding] = &[
    Binding {
        keys: &[KeyCode::Char('j'), KeyCode::Down],
        action: Action::SelectNext,
        key_label: "j/↓",
        short: "",
        help: "next step (next section on the overview)",
    },
    Binding {
        keys: &[KeyCode::Char('k'), KeyCode::Up],
        action: Action::SelectPrevious,
        key_label: "k/↑",
        short: "",
        help: "previous step (previous section on the overview)",
    },
    Binding {
        keys: &[KeyCode::Char('l'), KeyCode::Right],
        action: Action::ShowNextSection,
        key_label: "l/→",
        short: "section",
        help: "next section",
    },
    Binding {
        keys: &[KeyCode::Char('h'), KeyCode::Left],
        action: Action::ShowPreviousSection,
        key_label: "h/←",
        short: "",
        help: "previous section",
    },
    Binding {
        keys: &[KeyCode::Char('o')],
        action: Action::ShowOverview,
        key_label: "o",
        short: "overview",
        help: "overview of all sections",
    },
    Binding {
        keys: &[KeyCode::Enter],
        action: Action::RunStep,
        key_label: "Enter",
        short: "run",
        help: "run the step (tick a manual one, sign a sign-off, open a section)",
    },
    Binding {
        keys: &[KeyCode::Char('a')],
        action: Action::RunSection,
        key_label: "a",
        short: "run all",
        help: "run every automated step of this section",
    },
    Binding {
        keys: &[KeyCode::Char('c')],
        action: Action::CancelStep,
        key_label: "c",
        short: "cancel",
        help: "cancel the running step (kills its processes)",
    },
    Binding {
        keys: &[KeyCode::Char('t')],
        action: Action::TickStep,
        key_label: "t",
        short: "tick",
        help: "tick a manual step, with an optional note",
    },
    Binding {
        keys: &[KeyCode::Char('s')],
        action: Action::SkipStep,
        key_label: "s",
        short: "skip",
        help: "skip the step, with a reason",
    },
    Binding {
        keys: &[KeyCode::Char('g')],
        action: Action::SignOff,
        key_label: "g",
        short: "",
        help: "sign off (name; the role is the step's)",
    },
    Binding {
        keys: &[KeyCode::Char('y')],
        action: Action::Approve,
        key_label: "y",
        short: "",
        help: "watching: approve a step that waits for you (type the database name)",
    },
    Binding {
        keys: &[KeyCode::Char('n')],
        action: Action::Reject,
        key_label: "n",
        short: "",
        help: "watching: reject a step that waits for you, with a reason",
    },
    Binding {
        keys: &[KeyCode::Tab],
        action: Action::FocusNextPane,
        key_label: "Tab",
        short: "pane",
        help: "move between the step list and the output",
    },
    Binding {
        keys: &[KeyCode::PageUp],
        action: Action::ScrollOutputPageUp,
        key_label: "PgUp",
        short: "",
        help: "output: a page back",
    },
    Binding {
        keys: &[KeyCode::PageDown],
        action: Action::ScrollOutputPageDown,
        key_label: "PgDn",
        short: "",
        help: "output: a page forward",
    },
    Binding {
        keys: &[KeyCode::Char('f'), KeyCode::End],
        action: Action::FollowOutput,
        key_label: "f/End",
        short: "",
        help: "output: follow the newest lines",
    },
    Binding {
        keys: &[KeyCode::Char('m')],
        action: Action::TogglePanels,
        key_label: "m",
        short: "",
        help: "metrics and index status (always shown on wide screens)",
    },
    Binding {
        keys: &[KeyCode::Char('?')],
        action: Action::ToggleHelp,
        key_label: "?",
        short: "help",
        help: "this help",
    },
    Binding {
        keys: &[KeyCode::Esc],
        action: Action::Back,
        key_label: "Esc",
        short: "",
        help: "close a dialog, or back to the overview",
    },
    Binding {
        keys: &[KeyCode::Char('q')],
        action: Action::Quit,
        key_label: "q",
        short: "quit",
        help: "quit (asks while a step runs)",
    },
];

/// The action of a key press, if any. In the output pane, up and down scroll it.
pub fn action_for(key: KeyEvent, output_focused: bool) -> Option<Action> {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return (key.code == KeyCode::Char('c')).then_some(Action::Quit);
    }
    let action = BINDINGS
        .iter()
        .find(|binding| binding.keys.contains(&key.code))
        .map(|binding| binding.action)?;
    Some(match (action, output_focused) {
        (Action::SelectNext, true) => Action::ScrollOutputDown,
        (Action::SelectPrevious, true) => Action::ScrollOutputUp,
        (other, _) => other,
    })
}

/// `key label` pairs for the status bar.
pub fn status_bar() -> impl Iterator<Item = (&'static str, &'static str)> {
    BINDINGS
        .iter()
        .filter(|binding| !binding.short.is_empty())
        .map(|binding| (binding.key_label, binding.short))
}

//! The issuance job journal's vocabulary: the steps of a job and how far a job got, shared by
//! the job ([`crate::issuance`]) and [`crate::recovery`]. The journal stores each step's stable
//! name ([`JobStep::as_str`], the one place those strings
//! are written); recovery reads them back with [`JobStep::parse`] and [`Reached::from_journal`].

use registry::NumberState;
use serde::Serialize;

/// One journaled step of an issuance job, in the order a job takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum JobStep {
    /// A card left PERSONALIZING by an earlier failure goes back to BLANK.
    CardReset,
    /// Per-card management key installed, key pairs generated on the card.
    CardPrepare,
    /// Certificates for the card's public keys, recorded as issued.
    CaIssue,
    /// PIV objects and the ICAO 9303 LDS written, read back and checked.
    CardComplete,
    /// Journaled right before the LOCK command goes to the card: from here only the card can
    /// say whether the job finished.
    CardLock,
    /// Document ACTIVE, card LOCKED, certificates ACTIVE, in one commit.
    RegistryComplete,
}

impl JobStep {
    /// Every step, in job order.
    pub const ALL: [JobStep; 6] = [
        JobStep::CardReset,
        JobStep::CardPrepare,
        JobStep::CaIssue,
        JobStep::CardComplete,
        JobStep::CardLock,
        JobStep::RegistryComplete,
    ];

    /// The name the journal stores (stable: journals in existing registries use it).
    pub const fn as_str(self) -> &'static str {
        match self {
            JobStep::CardReset => "card.reset",
            JobStep::CardPrepare => "card.prepare",
            JobStep::CaIssue => "ca.issue",
            JobStep::CardComplete => "card.complete",
            JobStep::CardLock => "card.lock",
            JobStep::RegistryComplete => "registry.complete",
        }
    }

    /// The step a journal name stands for; `None` for a name no job step has.
    pub fn parse(name: &str) -> Option<JobStep> {
        JobStep::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the card reports this step's progress itself (card steps); the others get one
    /// progress event when they begin.
    pub fn card_reports_progress(self) -> bool {
        matches!(
            self,
            JobStep::CardReset | JobStep::CardPrepare | JobStep::CardComplete
        )
    }
}

impl std::fmt::Display for JobStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far a job got, as far as a failure or a crash is concerned: what its journal shows
/// begun decides how it is undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reached {
    /// Nothing written to the card that keeps the document number: it is released.
    Started,
    /// `card.complete` begun: the number may be on the card, so it is spoiled.
    CardWritten,
    /// `card.lock` journaled: the LOCK may have reached the card; only the card can say.
    LockJournaled,
}

impl Reached {
    /// Where beginning `step` takes a job.
    pub fn after_beginning(self, step: JobStep) -> Reached {
        let now = match step {
            JobStep::CardComplete => Reached::CardWritten,
            JobStep::CardLock => Reached::LockJournaled,
            _ => Reached::Started,
        };
        self.max(now)
    }

    /// What a job's journal (its step names, in any order) shows begun.
    pub fn from_journal<'a>(steps: impl IntoIterator<Item = &'a str>) -> Reached {
        steps
            .into_iter()
            .filter_map(JobStep::parse)
            .fold(Reached::Started, Reached::after_beginning)
    }

    /// Whether the card may be LOCKED by this job (then only the card can settle it).
    pub fn lock_may_have_reached_the_card(self) -> bool {
        self == Reached::LockJournaled
    }

    /// What becomes of the document number when the job is rolled back.
    pub fn number_on_rollback(self) -> NumberState {
        match self {
            Reached::Started => NumberState::Released,
            Reached::CardWritten | Reached::LockJournaled => NumberState::Spoiled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_names_are_the_ones_existing_registries_hold() {
        let names: Vec<_> = JobStep::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "card.reset",
                "card.prepare",
                "ca.issue",
                "card.complete",
                "card.lock",
                "registry.complete"
            ]
        );
        for s in JobStep::ALL {
            assert_eq!(JobStep::parse(s.as_str()), Some(s));
        }
        assert_eq!(JobStep::parse("lock"), None);
    }

    #[test]
    fn a_journal_decides_how_its_job_is_undone() {
        let r = Reached::from_journal(["card.prepare", "ca.issue"]);
        assert_eq!(r, Reached::Started);
        assert_eq!(r.number_on_rollback(), NumberState::Released);
        let r = Reached::from_journal(["card.prepare", "ca.issue", "card.complete"]);
        assert_eq!(r.number_on_rollback(), NumberState::Spoiled);
        assert!(!r.lock_may_have_reached_the_card());
        let r = Reached::from_journal(["card.complete", "card.lock", "something else"]);
        assert!(r.lock_may_have_reached_the_card());
    }
}

//! Cards (chips by serial) with their lifecycle, and the one active card of a holder.

use rusqlite::{params, OptionalExtension, Row};

use super::certificate::{cert_from_row, Certificate, CERT_COLS};
use super::document::{document_from_row, Document, DOCUMENT_COLS};
use crate::{now_rfc3339, validate, Error, Registry, Result, Tx};

/// Card lifecycle (ARCHITECTURE "The card"): BLANK → PERSONALIZING → LOCKED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardLifecycle {
    Blank,
    Personalizing,
    Locked,
    Destroyed,
}

impl CardLifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            CardLifecycle::Blank => "blank",
            CardLifecycle::Personalizing => "personalizing",
            CardLifecycle::Locked => "locked",
            CardLifecycle::Destroyed => "destroyed",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "blank" => CardLifecycle::Blank,
            "personalizing" => CardLifecycle::Personalizing,
            "locked" => CardLifecycle::Locked,
            _ => CardLifecycle::Destroyed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub id: i64,
    pub chip_serial: String,
    pub lifecycle: CardLifecycle,
    pub holder_id: Option<i64>,
    pub document_id: Option<i64>,
    pub updated_at: String,
}

pub(super) fn card_from_row(r: &Row<'_>) -> rusqlite::Result<Card> {
    let l: String = r.get(2)?;
    Ok(Card {
        id: r.get(0)?,
        chip_serial: r.get(1)?,
        lifecycle: CardLifecycle::parse(&l),
        holder_id: r.get(3)?,
        document_id: r.get(4)?,
        updated_at: r.get(5)?,
    })
}

const CARD_COLS: &str = "id, chip_serial, lifecycle, holder_id, document_id, updated_at";

/// A holder's current active card with its document and certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveCard {
    pub card: Card,
    pub document: Document,
    pub certificates: Vec<Certificate>,
}

impl Tx<'_> {
    /// Record a card by chip serial (idempotent), returning its id.
    pub fn upsert_card(&self, chip_serial: &str, lifecycle: CardLifecycle) -> Result<i64> {
        validate::text("chip_serial", chip_serial, 64)?;
        self.conn().execute(
            "INSERT INTO cards (chip_serial, lifecycle, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (chip_serial) DO UPDATE SET lifecycle = excluded.lifecycle, updated_at = excluded.updated_at",
            params![chip_serial, lifecycle.as_str(), now_rfc3339()],
        )?;
        Ok(self.conn().query_row(
            "SELECT id FROM cards WHERE chip_serial = ?1",
            [chip_serial],
            |r| r.get(0),
        )?)
    }

    /// Bind a card to a holder and document and set its lifecycle.
    pub fn bind_card(
        &self,
        chip_serial: &str,
        lifecycle: CardLifecycle,
        holder_id: Option<i64>,
        document_id: Option<i64>,
    ) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE cards SET lifecycle = ?2, holder_id = ?3, document_id = ?4, updated_at = ?5
             WHERE chip_serial = ?1",
            params![
                chip_serial,
                lifecycle.as_str(),
                holder_id,
                document_id,
                now_rfc3339()
            ],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!("card {chip_serial}")));
        }
        Ok(())
    }
}

impl Registry {
    pub fn card(&self, chip_serial: &str) -> Result<Option<Card>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {CARD_COLS} FROM cards WHERE chip_serial = ?1"),
                [chip_serial],
                card_from_row,
            )
            .optional()?)
    }

    /// The holder's current active card: a LOCKED card bound to the holder's active document.
    pub fn active_card(&self, holder_id: i64) -> Result<Option<ActiveCard>> {
        let doc = self
            .conn
            .query_row(
                &format!(
                    "SELECT {DOCUMENT_COLS} FROM documents WHERE holder_id = ?1 AND status = 'active'"
                ),
                [holder_id],
                document_from_row,
            )
            .optional()?;
        let Some(document) = doc else { return Ok(None) };
        let card = self
            .conn
            .query_row(
                &format!(
                    "SELECT {CARD_COLS} FROM cards WHERE document_id = ?1 AND lifecycle = 'locked'"
                ),
                [document.id],
                card_from_row,
            )
            .optional()?;
        let Some(card) = card else { return Ok(None) };
        let mut st = self.conn.prepare(&format!(
            "SELECT {CERT_COLS} FROM certificates WHERE card_id = ?1 ORDER BY id"
        ))?;
        let certificates = st
            .query_map([card.id], cert_from_row)?
            .collect::<Result<_, _>>()?;
        Ok(Some(ActiveCard {
            card,
            document,
            certificates,
        }))
    }
}

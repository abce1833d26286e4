//! The registration seam of an issuance: [`Registrar`] keeps the holder and document records
//! an issuance depends on — it reserves a document number under the one-active-card-per-holder
//! rule, records the card's certificates, and completes or aborts the issuance.
//!
//! The first implementation, [`LocalRegistry`], is the station's SQLite registry. The national
//! centre will be the second: the number and the holder rule are then the centre's. The
//! issuance job talks to the registry about holders, numbers and certificates only through
//! this trait (its step journal stays local).

use registry::{
    Actor, AuditEntry, CardLifecycle, DocumentNumber, NewHolder, Rollback, RollbackSummary,
    StepState,
};

use crate::certifier::CardCertificate;
use crate::datadir::{Work, WorkLock};
use crate::error::StationError;
use crate::holder::ValidHolder;
use crate::Station;

/// What an issuance asks to reserve.
pub struct Reservation<'a> {
    pub holder: &'a ValidHolder,
    /// The registry's view of the holder (`NewHolder::try_from(holder)`, the photo hashed).
    pub record: &'a NewHolder,
    /// The clerk confirmed a registered holder's changed data.
    pub update_holder: bool,
    /// The card the job will personalize.
    pub card_serial: u32,
}

/// A reserved issuance: its job, its document number, and the job's lock (held by this
/// process until the job ends).
pub struct Reserved {
    pub job_id: i64,
    pub number: DocumentNumber,
    pub lock: WorkLock,
}

/// A certificate as the registry recorded it.
#[derive(Debug, Clone)]
pub struct RecordedCertificate {
    pub id: i64,
    pub serial: String,
}

/// Holder and document records of issuances.
pub trait Registrar {
    /// Refuse, before the card is touched, a registered holder whose data differ, unless the
    /// clerk confirmed the change.
    fn check_holder(
        &self,
        st: &Station,
        record: &NewHolder,
        update_holder: bool,
    ) -> Result<(), StationError>;

    /// Refuse, before the card is touched, an issuance that cannot get a number or whose
    /// holder already has an active card.
    fn precheck(&self, st: &Station, holder: &ValidHolder) -> Result<(), StationError>;

    /// Register (or update) the holder, reserve a document number, open the job.
    fn reserve(
        &self,
        st: &mut Station,
        actor: &Actor,
        request: &Reservation<'_>,
    ) -> Result<Reserved, StationError>;

    /// Record the job's certificates as issued, finishing journal step `step_id` with them.
    fn record_certificates(
        &self,
        st: &mut Station,
        job_id: i64,
        step_id: i64,
        holder: &ValidHolder,
        certificates: &[CardCertificate],
    ) -> Result<Vec<RecordedCertificate>, StationError>;

    /// The card is LOCKED with these certificates: document, card and certificates active.
    fn complete(
        &self,
        st: &mut Station,
        actor: &Actor,
        completion: &registry::Completion,
        step_name: &str,
    ) -> Result<(), StationError>;

    /// Undo the issuance: certificates revoked, the number spoiled or released, and the card
    /// (`card_serial`, when the job got one and `rollback.card_reset` says it was not reset
    /// just now) left to be reset at its next insertion. Returns what was revoked. Used by the
    /// job and by recovery.
    fn abort(
        &self,
        st: &mut Station,
        actor: &Actor,
        rollback: &Rollback,
        card_serial: Option<&str>,
    ) -> Result<RollbackSummary, StationError>;
}

/// What registering an issuance's holder changes in the local registry, read before the
/// transaction that applies it.
pub struct HolderUpsert {
    existing: Option<registry::Holder>,
    latest_address: Option<registry::NewAddress>,
}

impl HolderUpsert {
    pub fn read(st: &Station, request: &Reservation<'_>) -> Result<Self, StationError> {
        let existing = st.registry.holder_by_pinfl(&request.holder.record.pinfl)?;
        let latest_address = match &existing {
            Some(h) => st
                .registry
                .addresses(h.id)?
                .into_iter()
                .last()
                .map(|a| a.data),
            None => None,
        };
        Ok(HolderUpsert {
            existing,
            latest_address,
        })
    }

    /// Register the holder, or update a registered one (changes refused unless the clerk
    /// confirmed them; each change audited) and add an address that differs from the latest.
    /// Returns the holder's id.
    pub fn apply(
        &self,
        tx: &registry::Tx<'_>,
        actor: &Actor,
        request: &Reservation<'_>,
    ) -> Result<i64, StationError> {
        let pinfl = &request.holder.record.pinfl;
        let address = registry::NewAddress::from(request.holder);
        let Some(h) = &self.existing else {
            return Ok(tx.insert_holder(request.record, &address, actor)?);
        };
        // Checked again inside the transaction: the data may have changed since the check
        // before the card.
        let changes = crate::holder_update::differences(&h.data, request.record);
        if !request.update_holder {
            crate::holder_update::refuse_unconfirmed(pinfl, &changes)?;
        }
        if !changes.is_empty() {
            tx.update_holder(h.id, request.record)?;
            tx.audit(&AuditEntry {
                actor,
                action: "holder.updated",
                object: &format!("holder:{pinfl}"),
                details: &serde_json::json!({
                    "changes": changes,
                    "confirmed_by_clerk": request.update_holder,
                }),
            })?;
        }
        if self.latest_address.as_ref() != Some(&address) {
            tx.add_address(h.id, &address, actor)?;
        }
        Ok(h.id)
    }
}

/// The local half of every reservation, in one transaction: the holder (registered, or
/// updated as [`HolderUpsert`] allows), the document number `number` gives (allocated here, or
/// the centre's), the job (locked before it becomes visible, so recovery in another process
/// never sees it unlocked) with its card, `step` (a journal step finished at once, e.g. the
/// centre's reservation) and `issuance.started`, whose details take the step's `audit` fields
/// too.
pub fn open_job(
    st: &mut Station,
    actor: &Actor,
    request: &Reservation<'_>,
    number: impl FnOnce(&registry::Tx<'_>, &str) -> Result<DocumentNumber, StationError>,
    step: Option<JournalEntry<'_>>,
) -> Result<Reserved, StationError> {
    let office = st.config.station.office.clone();
    let serial = crate::card::serial_text(request.card_serial);
    let upsert = HolderUpsert::read(st, request)?;
    let tx = st.registry.transaction()?;
    let holder_id = upsert.apply(&tx, actor, request)?;
    let number = number(&tx, &office)?;
    let job_id = tx.create_job(
        &registry::NewJob {
            holder_id,
            office: office.clone(),
            document: Some(number),
        },
        actor,
    )?;
    let lock = WorkLock::acquire(&st.layout.root, Work::IssuanceJob(job_id))?;
    tx.set_job_subjects(job_id, None, Some(&serial))?;
    let mut details = serde_json::json!({
        "document": number.to_string(), "pinfl": request.holder.record.pinfl, "card": serial,
    });
    if let Some(entry) = step {
        let id = tx.begin_step(job_id, entry.step, entry.details)?;
        tx.finish_step(id, StepState::Done, None)?;
        if let (Some(d), Some(extra)) = (details.as_object_mut(), entry.audit.as_object()) {
            d.extend(extra.clone());
        }
    }
    tx.audit(&AuditEntry {
        actor,
        action: "issuance.started",
        object: &format!("job:{job_id}"),
        details: &details,
    })?;
    tx.commit()?;
    Ok(Reserved {
        job_id,
        number,
        lock,
    })
}

/// A journal step [`open_job`] records, finished, with the job.
pub struct JournalEntry<'a> {
    pub step: &'a str,
    pub details: &'a serde_json::Value,
    /// Fields added to the `issuance.started` audit event.
    pub audit: serde_json::Value,
}

/// The station's own SQLite registry.
pub struct LocalRegistry;

impl Registrar for LocalRegistry {
    fn check_holder(
        &self,
        st: &Station,
        record: &NewHolder,
        update_holder: bool,
    ) -> Result<(), StationError> {
        if !update_holder {
            if let Some(h) = st.registry.holder_by_pinfl(&record.pinfl)? {
                let changes = crate::holder_update::differences(&h.data, record);
                crate::holder_update::refuse_unconfirmed(&record.pinfl, &changes)?;
            }
        }
        Ok(())
    }

    fn precheck(&self, st: &Station, holder: &ValidHolder) -> Result<(), StationError> {
        let office = &st.config.station.office;
        if !st
            .registry
            .number_blocks(office)?
            .iter()
            .any(|b| b.next <= b.last)
        {
            return Err(StationError::Conflict(format!(
                "office {office} has no document numbers left: assign it a new number block"
            )));
        }
        if let Some(h) = st.registry.holder_by_pinfl(&holder.record.pinfl)? {
            if let Some(active) = st.registry.active_card(h.id)? {
                return Err(StationError::Conflict(format!(
                    "holder {} already has an active card (document {}); declare it lost or damaged first: `idstation revoke --document {} --reason lost --operator NAME`",
                    holder.record.pinfl, active.document.number, active.document.number
                )));
            }
        }
        Ok(())
    }

    fn reserve(
        &self,
        st: &mut Station,
        actor: &Actor,
        request: &Reservation<'_>,
    ) -> Result<Reserved, StationError> {
        open_job(
            st,
            actor,
            request,
            |tx, office| Ok(tx.allocate_document_number(office)?),
            None,
        )
    }

    fn record_certificates(
        &self,
        st: &mut Station,
        job_id: i64,
        step_id: i64,
        holder: &ValidHolder,
        certificates: &[CardCertificate],
    ) -> Result<Vec<RecordedCertificate>, StationError> {
        let holder_id = st
            .registry
            .holder_by_pinfl(&holder.record.pinfl)?
            .map(|h| h.id)
            .ok_or_else(|| StationError::Other("holder vanished from the registry".into()))?;
        let rtx = st.registry.transaction()?;
        let mut recorded = Vec::new();
        for c in certificates {
            let mut rec = crate::hierarchy::cert_record(c.issuer_key_id, &c.der, &c.profile)?;
            rec.holder_id = Some(holder_id);
            rec.job_id = Some(job_id);
            let serial = rec.serial.clone();
            recorded.push(RecordedCertificate {
                id: rtx.insert_certificate(&rec)?,
                serial,
            });
        }
        let serials: Vec<&String> = recorded.iter().map(|c| &c.serial).collect();
        rtx.finish_step(
            step_id,
            StepState::Done,
            Some(&serde_json::json!({ "certificates": serials })),
        )?;
        rtx.commit()?;
        Ok(recorded)
    }

    fn complete(
        &self,
        st: &mut Station,
        actor: &Actor,
        completion: &registry::Completion,
        step_name: &str,
    ) -> Result<(), StationError> {
        // The completion and a checkpoint over its audit event, signed with the HSM audit key,
        // commit together: every issuance ends inside a signed checkpoint.
        let audit_label = st.config.ca.audit_key.clone();
        let keys = &st.keys;
        let sign = |m: &[u8]| keys.sign_p256_sha256(&audit_label, m);
        let rtx = st.registry.transaction()?;
        let s = rtx.begin_step(completion.job_id, step_name, &serde_json::json!({}))?;
        rtx.finish_step(s, StepState::Done, None)?;
        rtx.complete_issuance(completion, actor)?;
        rtx.audit_checkpoint(&sign)?;
        rtx.commit()?;
        Ok(())
    }

    fn abort(
        &self,
        st: &mut Station,
        actor: &Actor,
        rollback: &Rollback,
        card_serial: Option<&str>,
    ) -> Result<RollbackSummary, StationError> {
        Ok(st.registry.write(|tx| {
            if let (Some(serial), None) = (card_serial, &rollback.card_reset) {
                tx.upsert_card(serial, CardLifecycle::Personalizing)?;
            }
            tx.roll_back_issuance(rollback, actor)
        })?)
    }
}

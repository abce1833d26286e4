//! The ICAO 9303 part of the executor: the chip's Chip Authentication and Active
//! Authentication keys in the prepare phase (so the caller can put DG14/DG15 under EF.SOD),
//! and the LDS steps of the complete phase — the LDS files and the access-control passwords
//! written (PACE CAN and MRZ, the BAC key seed only where the document profile keeps BAC),
//! read back as an inspection system would (PACE with the CAN, Chip Authentication, Active
//! Authentication; BAC too where offered), passive authentication, PIV selected again.

use profiles::document::ChipAccess;

use super::{not_in_phase, CompleteRun, LdsPlan, Prepared};
use crate::apdu::Command;
use crate::bac::LDS1_AID;
use crate::error::Error;
use crate::pace::{ca, Access};
use crate::piv::Piv;
use crate::steps::{CardStep, LDS_STEPS};

/// The LDS steps of a complete phase for `access` (`None`: BAC only, [`LDS_STEPS`]).
pub(super) fn lds_steps(access: Option<ChipAccess>) -> Vec<CardStep> {
    match access {
        None => LDS_STEPS.to_vec(),
        Some(a) => {
            let mut v = vec![CardStep::WriteLds, CardStep::ReadLdsThroughPace];
            if a.bac() {
                v.push(CardStep::ReadLdsThroughBac);
            }
            v.extend([CardStep::PassiveAuthentication, CardStep::SelectPivAgain]);
            v
        }
    }
}

fn select_lds(p: &mut Piv<'_>) -> Result<(), Error> {
    p.channel()
        .ok(&Command::new(
            "SELECT LDS1",
            0xA4,
            0x04,
            0x0C,
            LDS1_AID.to_vec(),
        ))
        .map(|_| ())
}

/// The chip generates its CA and AA key pairs in the ICAO application (management key
/// authenticated in this card session); PIV is selected again after.
pub(super) fn generate_chip_keys(p: &mut Piv<'_>) -> Result<ca::ChipKeys, Error> {
    select_lds(p)?;
    let keys = ca::generate_chip_keys(p.channel())?;
    p.select()?;
    Ok(keys)
}

fn plan_err(rule: impl Into<String>) -> Error {
    Error::Invalid {
        field: "LDS plan".into(),
        rule: rule.into(),
    }
}

/// Before any APDU: with PACE the plan has a CAN, and DG14/DG15 carry exactly the keys the
/// chip generated in the prepare phase.
pub(super) fn check_plan(
    access: Option<ChipAccess>,
    prepared: &Prepared,
    plan: &LdsPlan<'_>,
) -> Result<(), Error> {
    if access.is_none() {
        return Ok(());
    }
    let can = plan
        .can
        .as_ref()
        .ok_or_else(|| plan_err("a PACE card needs a CAN"))?;
    crate::pace::Password::can(can)?;
    let keys = prepared
        .chip_keys
        .as_ref()
        .ok_or_else(|| plan_err("the prepared card has no Chip Authentication keys"))?;
    if plan.files.dgs.get(&14) != Some(&ca::dg14(&keys.ca)) {
        return Err(plan_err(
            "DG14 must carry the chip's Chip Authentication key",
        ));
    }
    if plan.files.dgs.get(&15) != Some(&ca::dg15(&keys.aa)) {
        return Err(plan_err(
            "DG15 must carry the chip's Active Authentication key",
        ));
    }
    Ok(())
}

impl CompleteRun<'_> {
    /// The ICAO 9303 steps: write the LDS and its passwords, read it back, passive
    /// authentication, select PIV again.
    pub(super) fn lds_step(&mut self, step: CardStep, p: &mut Piv<'_>) -> Result<(), Error> {
        let plan = self
            .lds
            .ok_or_else(|| not_in_phase(step, "complete without an LDS"))?;
        match step {
            CardStep::WriteLds => self.write(plan, p),
            CardStep::ReadLdsThroughPace => {
                let can = plan.can.as_deref().map(String::as_str).unwrap_or_default();
                let expected = self.prepared.chip_keys.as_ref().map(|k| k.ca.as_slice());
                let read = ca::read_lds_authenticated(p.channel(), &Access::can(can)?, expected)?;
                self.lds_read = Some(read);
                self.lds_checks.extend(["PACE-CAN", "CA", "AA"]);
                Ok(())
            }
            CardStep::ReadLdsThroughBac => {
                let read = crate::lds::read_lds(p.channel(), &plan.mrz_information)?;
                match &self.lds_read {
                    // After PACE: BAC must show the same files.
                    Some(pace) if *pace != read => {
                        return Err(Error::ReadBackMismatch {
                            object: "LDS read through BAC".into(),
                        })
                    }
                    Some(_) => {}
                    None => self.lds_read = Some(read),
                }
                self.lds_checks.push("BAC");
                Ok(())
            }
            CardStep::PassiveAuthentication => {
                let read = self
                    .lds_read
                    .as_ref()
                    .ok_or_else(|| not_in_phase(step, "complete before the LDS is read"))?;
                if read.com != plan.files.com()? {
                    return Err(Error::ReadBackMismatch {
                        object: "EF.COM".into(),
                    });
                }
                let pa = crate::sod::passive_authentication(
                    &read.sod,
                    &read.dgs,
                    plan.csca_der,
                    plan.now,
                )?;
                self.lds_verified = pa.dg_hashes.keys().copied().collect();
                self.lds_checks.push("PA");
                Ok(())
            }
            _ => p.select().map(|_| ()),
        }
    }

    /// The LDS files, then the passwords: with PACE the CAN and the MRZ (and the BAC key seed
    /// only where the profile keeps BAC), without PACE the BAC key seed.
    fn write(&self, plan: &LdsPlan<'_>, p: &mut Piv<'_>) -> Result<(), Error> {
        let kseed = crate::bac::kseed(&plan.mrz_information);
        match self.chip_access {
            None => crate::lds::write_lds(p.channel(), plan.files, &kseed),
            Some(access) => {
                let can = plan.can.as_deref().map(String::as_str).unwrap_or_default();
                if access.bac() {
                    crate::lds::write_lds(p.channel(), plan.files, &kseed)?;
                } else {
                    crate::lds::write_lds_files(p.channel(), plan.files)?;
                }
                crate::lds::write_pace_passwords(p.channel(), &plan.mrz_information, can)
            }
        }
    }
}

//! PIN and PUK commands (SP 800-73-4 Part 2 clauses 3.2.1 to 3.2.3): VERIFY, CHANGE REFERENCE
//! DATA, RESET RETRY COUNTER with the PUK, and the issuer's RESET RETRY COUNTER with P1 = 02
//! (ISO/IEC 7816-4 clause 11.5.10) that sets a new PIN or PUK under the management key. PINs
//! are in the format of Part 2 clause 2.4.3.

use zeroize::Zeroizing;

use super::{valid_pin_format, Piv, KEY_PIN, KEY_PUK};
use crate::apdu::Command;
use crate::os::{CardContext, Lifecycle};
use crate::sw::StatusWord;

impl Piv {
    // --- VERIFY (SP 800-73-4 Part 2 clause 3.2.1) ---
    pub(super) fn verify(
        &mut self,
        ctx: &mut CardContext,
        cmd: &Command,
    ) -> Result<Vec<u8>, StatusWord> {
        if cmd.p1 != 0x00 && cmd.p1 != 0xFF {
            return Err(StatusWord::IncorrectP1P2);
        }
        if cmd.p2 != KEY_PIN {
            return Err(StatusWord::ReferenceNotFound);
        }
        if cmd.p1 == 0xFF {
            // Reset the security status of the key reference (data field absent).
            if !cmd.data.is_empty() {
                return Err(StatusWord::WrongLength);
            }
            self.pin_verified = false;
            self.pin_fresh_for_always = false;
            return Ok(Vec::new());
        }
        if cmd.data.is_empty() {
            // Retry status query.
            if self.pin.left == 0 {
                return Err(StatusWord::AuthBlocked);
            }
            if self.pin_verified {
                return Ok(Vec::new());
            }
            return Err(StatusWord::WrongPin(self.pin.left.min(15)));
        }
        if !valid_pin_format(&cmd.data) {
            return Err(StatusWord::IncorrectData);
        }
        let before = self.pin.left;
        let result = self.pin.check(&cmd.data);
        if self.pin.left != before || result.is_err() {
            ctx.mark_dirty();
        }
        match result {
            Ok(()) => {
                self.pin_verified = true;
                self.pin_fresh_for_always = true;
                Ok(Vec::new())
            }
            Err(sw) => {
                self.pin_verified = false;
                self.pin_fresh_for_always = false;
                Err(sw)
            }
        }
    }

    // --- CHANGE REFERENCE DATA (SP 800-73-4 Part 2 clause 3.2.2) ---
    pub(super) fn change_reference(
        &mut self,
        ctx: &mut CardContext,
        cmd: &Command,
    ) -> Result<Vec<u8>, StatusWord> {
        if cmd.p1 != 0x00 {
            return Err(StatusWord::IncorrectP1P2);
        }
        if cmd.p2 != KEY_PIN && cmd.p2 != KEY_PUK {
            return Err(StatusWord::ReferenceNotFound);
        }
        if cmd.data.len() != 16 {
            return Err(StatusWord::IncorrectData);
        }
        let (old, new) = cmd.data.split_at(8);
        let is_pin = cmd.p2 == KEY_PIN;
        if is_pin && (!valid_pin_format(old) || !valid_pin_format(new)) {
            return Err(StatusWord::IncorrectData);
        }
        let reference = if is_pin { &mut self.pin } else { &mut self.puk };
        if reference.left == 0 {
            return Err(StatusWord::AuthBlocked);
        }
        ctx.mark_dirty();
        reference.check(old)?;
        reference.value = Zeroizing::new(new.to_vec());
        if is_pin {
            self.pin_verified = true;
        }
        ctx.personalization_step();
        Ok(Vec::new())
    }

    // --- RESET RETRY COUNTER (SP 800-73-4 Part 2 clause 3.2.3) ---
    pub(super) fn reset_retry_counter(
        &mut self,
        ctx: &mut CardContext,
        cmd: &Command,
    ) -> Result<Vec<u8>, StatusWord> {
        if cmd.p1 == 0x02 {
            return self.reset_as_issuer(ctx, cmd);
        }
        if cmd.p1 != 0x00 {
            return Err(StatusWord::IncorrectP1P2);
        }
        if cmd.p2 != KEY_PIN {
            return Err(StatusWord::ReferenceNotFound);
        }
        if cmd.data.len() != 16 {
            return Err(StatusWord::IncorrectData);
        }
        let (puk, new_pin) = cmd.data.split_at(8);
        if !valid_pin_format(new_pin) {
            return Err(StatusWord::IncorrectData);
        }
        if self.puk.left == 0 {
            return Err(StatusWord::AuthBlocked);
        }
        ctx.mark_dirty();
        self.puk.check(puk)?;
        self.pin.value = Zeroizing::new(new_pin.to_vec());
        self.pin.left = self.pin.max;
        self.pin_verified = false;
        self.pin_fresh_for_always = false;
        ctx.personalization_step();
        Ok(Vec::new())
    }

    /// RESET RETRY COUNTER with P1 = 02 (ISO/IEC 7816-4 clause 11.5.10: "the command data
    /// field contains new reference data"; the resetting code is replaced by a security
    /// status): the issuer, with the management key authenticated in this card session, sets
    /// a new PIN (P2 = 80, 8 bytes in PIN format) or a new PUK (P2 = 81, any 8 bytes) and
    /// resets that reference's retry counter to its maximum. Any lifecycle state. The PIN's
    /// security status is cleared. SP 800-73-4 defines only P1 = 00 (PUK + new PIN).
    fn reset_as_issuer(
        &mut self,
        ctx: &mut CardContext,
        cmd: &Command,
    ) -> Result<Vec<u8>, StatusWord> {
        if cmd.p2 != KEY_PIN && cmd.p2 != KEY_PUK {
            return Err(StatusWord::ReferenceNotFound);
        }
        if cmd.data.len() != 8 {
            return Err(StatusWord::IncorrectData);
        }
        if cmd.p2 == KEY_PIN && !valid_pin_format(&cmd.data) {
            return Err(StatusWord::IncorrectData);
        }
        let authenticated = if ctx.lifecycle == Lifecycle::Locked {
            self.issuer_authenticated(ctx)
        } else {
            ctx.mgmt_authenticated
        };
        if !authenticated {
            return Err(StatusWord::SecurityStatusNotSatisfied);
        }
        let reference = if cmd.p2 == KEY_PIN {
            &mut self.pin
        } else {
            &mut self.puk
        };
        reference.value = Zeroizing::new(cmd.data.clone());
        reference.left = reference.max;
        self.pin_verified = false;
        self.pin_fresh_for_always = false;
        ctx.personalization_step();
        Ok(Vec::new())
    }
}

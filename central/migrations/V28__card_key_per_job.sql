-- Version 28: a card's management key is derived over its chip serial and a random value drawn
-- for the issuance job that prepares the card (`jobs.card_key_salt`, 16 bytes, drawn with
-- `card_key` at the first release). A chip serial is printed on the card and can be named in any
-- reservation: without the job's own value, a key released for one job opens no card that
-- another job prepared, and a blank card's key cannot be asked for before its issuance.
ALTER TABLE jobs ADD COLUMN card_key_salt BYTEA CHECK (length(card_key_salt) = 16);
ALTER TABLE jobs ADD CONSTRAINT jobs_card_key_salt
    CHECK ((card_key IS NULL) = (card_key_salt IS NULL));

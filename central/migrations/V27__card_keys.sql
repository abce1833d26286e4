-- Version 27: the centre derives the per-card PIV management keys of the cards its stations
-- issue from now on (HMAC-SHA256 under a secret key in the centre's HSM, `card_keys`), so that
-- any office can renew a card's certificates or unblock its PIN, not only the one that issued
-- it. `jobs.card_key` names the key a job's card was given (set when the issuing station first
-- asks for it); a job without one is a card under its issuing station's own key.
CREATE TABLE card_keys (
    label       TEXT PRIMARY KEY,
    state       TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'retired')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX card_keys_one_active ON card_keys (state) WHERE state = 'active';
ALTER TABLE jobs ADD COLUMN card_key TEXT REFERENCES card_keys (label);

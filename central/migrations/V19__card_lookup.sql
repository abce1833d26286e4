-- Version 19: a card by its chip serial (`POST /v1/cards/lookup`: a clerk of any office serves a
-- holder whose card another office issued), without reading the whole documents table. The
-- look-up ignores the case of the hex digits, so the index is on the upper-case form.
CREATE INDEX documents_card_serial ON documents (upper(card_serial));

-- Version 31: a renewal the centre aborted — by its timeout (`timed_out_at`) or by a ca-admin
-- (`idcentral renewals abort`) — rather than by its station. The card may carry its
-- certificates either way, so they still count as the card's for the card-key release until a
-- renewal of the document completes (docs/centre.md "Card management keys").
ALTER TABLE service_jobs ADD COLUMN aborted_at_centre BOOLEAN NOT NULL DEFAULT false;
UPDATE service_jobs SET aborted_at_centre = true WHERE timed_out_at IS NOT NULL;
ALTER TABLE service_jobs ADD CONSTRAINT service_jobs_aborted_at_centre
    CHECK (NOT aborted_at_centre OR state = 'aborted');

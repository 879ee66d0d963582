-- Invoice numbers of this shard: unique and gap-tolerant (a rolled-back
-- completion burns a number), never derived from the clock.
CREATE SEQUENCE invoice_number_seq AS bigint START WITH 1 INCREMENT BY 1 NO CYCLE;

-- shard.sql - one order shard: the granted coupons (coupon_results) and the
-- compensation barrier. Applied to every shard database by `scripts/stack
-- migrate`; every statement is idempotent.

-- One row per granted grab. saga_id is unique so that a redelivered
-- order.create inserts nothing. The indexes serve each strategy's queries:
-- a user's coupons (hash), a room's newest orders (range-room), a time
-- window (range-day) and the one-per-user check.
CREATE TABLE IF NOT EXISTS coupon_results (
    result_id     BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    saga_id       CHAR(32)        CHARACTER SET ascii NOT NULL,
    user_id       BIGINT UNSIGNED NOT NULL,
    coupon_id     BIGINT UNSIGNED NOT NULL,
    room_id       BIGINT UNSIGNED NOT NULL,
    grab_status   TINYINT         NOT NULL DEFAULT 1 COMMENT '1 granted',
    fail_reason   VARCHAR(32)     NULL,
    grab_time     DATETIME(3)     NOT NULL,
    use_status    TINYINT         NOT NULL DEFAULT 0 COMMENT '0 unused, 1 used, 2 expired',
    use_time      DATETIME        NULL,
    order_amount  DECIMAL(10,2)   NOT NULL DEFAULT 0,
    UNIQUE KEY uk_saga (saga_id),
    KEY idx_user_coupon (user_id, coupon_id),
    KEY idx_user_time (user_id, grab_time),
    KEY idx_room (room_id),
    KEY idx_time (grab_time),
    KEY idx_room_time (room_id, grab_time)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Written by order.cancel. A create whose saga has a barrier does nothing,
-- so a cancel that overtakes its create (retries, redelivery) still wins.
CREATE TABLE IF NOT EXISTS saga_barriers (
    saga_id     CHAR(32)    CHARACTER SET ascii NOT NULL PRIMARY KEY,
    created_at  DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB;

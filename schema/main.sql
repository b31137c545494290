-- main.sql - the main database: users, rooms, coupons and their stock history.
-- Applied by `scripts/stack migrate`; every statement is idempotent.

CREATE TABLE IF NOT EXISTS users (
    user_id      BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    username     VARCHAR(64)     NOT NULL,
    user_level   TINYINT         NOT NULL DEFAULT 0 COMMENT '0 normal, 1 VIP, 2 SVIP',
    created_at   DATETIME        NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS live_rooms (
    room_id      BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    room_name    VARCHAR(128)    NOT NULL,
    anchor_name  VARCHAR(64)     NOT NULL,
    is_hot       TINYINT         NOT NULL DEFAULT 0,
    created_at   DATETIME        NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The hot columns of a coupon; the large text lives in coupon_details
-- (vertical split) so that stock and listing queries read small rows.
CREATE TABLE IF NOT EXISTS coupons (
    coupon_id       BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    room_id         BIGINT UNSIGNED NOT NULL,
    coupon_name     VARCHAR(128)    NOT NULL,
    coupon_type     TINYINT         NOT NULL DEFAULT 1 COMMENT '1 amount off, 2 percent off',
    discount_amount DECIMAL(10,2)   NOT NULL DEFAULT 0,
    min_order       DECIMAL(10,2)   NOT NULL DEFAULT 0,
    total_stock     INT UNSIGNED    NOT NULL,
    start_time      DATETIME        NULL,
    end_time        DATETIME        NULL,
    status          TINYINT         NOT NULL DEFAULT 1 COMMENT '1 active, 0 disabled',
    created_at      DATETIME        NOT NULL DEFAULT CURRENT_TIMESTAMP,
    KEY idx_room (room_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS coupon_details (
    coupon_id    BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    description  TEXT            NOT NULL,
    usage_rules  TEXT            NOT NULL,
    image_url    VARCHAR(512)    NOT NULL DEFAULT ''
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS stock_logs (
    log_id        BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    coupon_id     BIGINT UNSIGNED NOT NULL,
    change_type   VARCHAR(16)     NOT NULL COMMENT 'load, reconcile, adjust',
    change_amount INT             NOT NULL,
    stock_after   INT             NOT NULL,
    note          VARCHAR(255)    NOT NULL DEFAULT '',
    created_at    DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY idx_coupon (coupon_id, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Run once by the postgres image when its data volume is created (docker-compose.yml).
-- predflow creates `predictions` and `prediction_history` itself but only reads
-- `earnings_calendar` (docs/interface.md §2): create it empty so routing finds the table.
CREATE TABLE IF NOT EXISTS earnings_calendar (
  symbol      text NOT NULL,
  report_date date NOT NULL,
  timing      text NOT NULL DEFAULT 'UNKNOWN'
              CHECK (timing IN ('BMO','AMC','DMH','UNKNOWN')),
  PRIMARY KEY (symbol, report_date));

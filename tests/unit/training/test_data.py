"""Each bad-data case gives a clear error naming the offending row or count."""

import numpy as np
import pandas as pd
import pytest

from training.data import DataError, normalize_columns, read_csv, read_sample, validate


def frame(n=200, changes=None) -> pd.DataFrame:
    dates = pd.bdate_range("2020-01-01", periods=n)
    df = pd.DataFrame({"date": dates, "close": np.linspace(10, 20, n), "volume": 1000.0})
    for (col, row), value in (changes or {}).items():
        df.loc[row, col] = value
    return df


def test_valid_frame_passes_unchanged():
    df, dropped = validate(frame(), window=60, min_windows=10, drop_frozen=True)
    assert len(df) == 200 and dropped == 0


@pytest.mark.parametrize(
    "changes,message",
    [
        ({("close", 5): np.nan}, r"NaN or missing close at row 6 \(2020-01-08\) \(1 rows\)"),
        ({("close", 7): np.inf}, r"NaN or missing close at row 8"),
        ({("close", 9): 0.0}, r"non-positive close 0\.0 at row 10"),
        (
            {("close", 3): -1.0, ("close", 4): -2.0},
            r"non-positive close -1\.0 at row 4 .*\(2 rows\)",
        ),
    ],
)
def test_bad_values_are_named(changes, message):
    with pytest.raises(DataError, match=message):
        validate(frame(changes=changes), 60, 10, True)


def test_duplicate_date_is_named():
    df = frame()
    df.loc[11, "date"] = df.loc[10, "date"]
    with pytest.raises(DataError, match=r"duplicate date at row 12 \(2020-01-15\)"):
        validate(df, 60, 10, True)


def test_unsorted_dates_are_named():
    df = frame()
    df.loc[[20, 21], "date"] = df.loc[[21, 20], "date"].to_numpy()
    with pytest.raises(DataError, match=r"not ascending at row 22 .*1 rows out of order"):
        validate(df, 60, 10, True)


def test_too_few_rows_states_the_count():
    with pytest.raises(DataError, match=r"too few rows: 50 sessions, need at least 70"):
        validate(frame(50), 60, 10, True)


def test_zero_volume_sessions_are_dropped_and_counted(caplog):
    df = frame()
    df.loc[[30, 31, 32], "volume"] = 0
    out, dropped = validate(df, 60, 10, True)
    assert dropped == 3 and len(out) == 197 and (out["volume"] > 0).all()
    assert "dropped 3 zero-volume" in caplog.text
    kept, none = validate(df, 60, 10, drop_frozen=False)
    assert none == 0 and len(kept) == 200


def test_yfinance_header_variant_is_accepted(tmp_path):
    path = tmp_path / "yf.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2024-01-02 00:00:00-03:00,37.0,38.0,36.5,37.5,30.1,1000\n"
        "2024-01-03 00:00:00-03:00,37.5,38.5,37.0,38.0,30.5,2000\n"
    )
    df = read_csv(path)
    assert df["close"].tolist() == [37.5, 38.0]  # Close, not Adj Close
    assert df["date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-01-02", "2024-01-03"]


def test_missing_close_column_is_named(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("date,open\n2024-01-02,1\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['close'\]"):
        read_csv(path)


def test_unparseable_date_is_named(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("date,close\n2024-01-02,1\nnot-a-date,2\n")
    with pytest.raises(DataError, match="unparseable date at row 2"):
        validate(read_csv(path), 1, 0, True)


def test_shared_petr4_file_parses_and_validates(petr4_csv):
    df, dropped = validate(read_csv(petr4_csv), 60, 900, True)
    assert len(df) == 4427 and dropped == 0
    assert df["date"].iloc[0] == pd.Timestamp("2008-01-02") and df["date"].iloc[-1] == pd.Timestamp(
        "2025-11-07"
    )


def test_packaged_sample_is_real_aapl_2019_2024():
    df, _ = validate(read_sample(), 60, 900, True)
    assert len(df) == 1509 and df["date"].iloc[0] == pd.Timestamp("2019-01-02")
    assert df["close"].iloc[0] == pytest.approx(39.48)


def test_normalize_reads_a_date_index():
    raw = pd.DataFrame(
        {"Close": [1.0, 2.0]},
        index=pd.Index(pd.to_datetime(["2024-01-02", "2024-01-03"]), name="Date"),
    )
    assert normalize_columns(raw)["close"].tolist() == [1.0, 2.0]

"""Bad files exit 2 with a message naming the problem; suspicious series are refused or warned about."""

from __future__ import annotations

import gzip
import re
from datetime import date

import numpy as np
import pandas as pd
import pytest

from training.data import read_csv, read_sample, validate
from training.errors import DataError
from training.sanity import check_series

TODAY = date(2025, 12, 1)


def series(closes, start="2024-01-02") -> pd.DataFrame:
    dates = pd.bdate_range(start, periods=len(closes))
    return pd.DataFrame({"date": dates, "close": np.asarray(closes, dtype=float), "volume": 1.0})


def walk(n: int = 300, seed: int = 0) -> np.ndarray:
    return 20 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.02, n)))


def at(row: int, factor: float, onwards: bool = False):
    """Multiply the close at `row` (0-based; and every later one if `onwards`) by `factor`."""
    return lambda c, d: (np.where((np.arange(len(c)) >= row) if onwards else (np.arange(len(c)) == row),
                                  c * factor, c), d)  # fmt: skip


def dated(row: int, day: str):
    return lambda c, d: (c, d.where(d.index != row, pd.Timestamp(day)))


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda c, d: (c * 1e300, d), r"beyond any traded price: wrong units\?"),
        (at(150, 50), r"moves 4\d\.\dx in one session at row 151 \(2024-07-30\)"),
        (at(150, 50, onwards=True), r"moves 4\d\.\dx in one session at row 151"),
        (lambda c, d: (np.full(len(c), 12.5), d), r"never changes \(12.5 on all 300 rows\)"),
        (dated(299, "2099-01-02"), r"2099-01-02\) is in the future"),
        (dated(0, "1900-01-02"), r"\d+ days without a session before row 2"),
    ],
    ids=["x1e300", "spike", "level shift", "constant", "2099 row", "1900 row"],
)
def test_a_series_nobody_should_train_on_is_refused(change, message):
    frame = series(walk())
    closes, dates = change(frame["close"].to_numpy(), frame["date"])
    frame = frame.assign(close=closes, date=dates)
    with pytest.raises(DataError, match=message):
        check_series(frame, today=TODAY)


def test_a_split_is_kept_and_warned_about():
    closes = walk()
    closes[200:] /= 10  # a 1:10 split in unadjusted data
    (warning,) = check_series(series(closes), today=TODAY)
    assert (
        re.search(r"moves 0\.09\d+x in one session at row 201 \(2024-10-08\)", warning) and "split" in warning
    )


def test_both_real_series_pass_without_a_warning(petr4_csv):
    for frame in (read_csv(petr4_csv), read_sample()):
        checked, _ = validate(frame, window=60, min_windows=100, drop_frozen=True)
        assert check_series(checked) == []


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "is empty"),
        (b"   \n\n", "is empty"),
        (gzip.compress(b"date,close\n2024-01-02,10\n"), "not a text CSV (compressed or binary)"),
        (b"\x00\x01\x02binary", "not a text CSV"),
        (b"date,close\n13/01/2024x,10\n", "unparseable date at row 1"),
    ],
    ids=["empty", "blank", "gzip", "binary", "garbage date"],
)
def test_bad_files_are_data_errors_naming_the_problem(tmp_path, content, message):
    path = tmp_path / "prices.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=re.escape(message)):
        validate(read_csv(path), window=1, min_windows=1, drop_frozen=True)


def test_a_brazilian_export_is_read_with_semicolons_decimal_commas_and_day_first_dates(tmp_path):
    path = tmp_path / "petr4.csv"
    path.write_text("Data;Fechamento;Volume\n12/01/2024;1.234,56;100\n15/01/2024;37,80;200\n")
    frame = read_csv(path)
    assert frame["date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-01-12", "2024-01-15"]
    assert frame["close"].tolist() == [1234.56, 37.8]


def test_timezone_dates_keep_their_own_calendar_day(tmp_path):
    path = tmp_path / "tokyo.csv"
    path.write_text("Date,Close\n2024-01-02 00:00:00+09:00,10\n2024-01-03 00:00:00+09:00,11\n")
    assert read_csv(path)["date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-01-02", "2024-01-03"]


def test_boundaries_are_where_the_docstring_says():
    """Tomorrow is still accepted (a session in another timezone); a 366-day gap too; exactly 20x is
    refused and exactly 2x is warned about; one row is not "constant"."""
    frame = series(walk(5), start="2025-11-24")
    tomorrow = frame.assign(date=frame["date"].where(frame.index != 4, pd.Timestamp(date(2025, 12, 2))))
    check_series(tomorrow, today=TODAY)
    after = frame.assign(date=frame["date"].where(frame.index != 4, pd.Timestamp(date(2025, 12, 3))))
    with pytest.raises(DataError, match="in the future"):
        check_series(after, today=TODAY)
    dates = pd.to_datetime(["2020-01-01", "2020-12-31", "2022-01-01"])  # gaps of 365 and 366 days
    check_series(pd.DataFrame({"date": dates, "close": [10.0, 11.0, 12.0], "volume": 1.0}), today=TODAY)
    late = pd.to_datetime(["2020-01-01", "2021-01-02"])  # 367 days
    with pytest.raises(DataError, match="367 days without a session"):
        check_series(pd.DataFrame({"date": late, "close": [10.0, 11.0], "volume": 1.0}), today=TODAY)
    assert check_series(series([10.0]), today=TODAY) == []
    with pytest.raises(DataError, match="moves 20x"):
        check_series(series([10.0, 200.0]), today=TODAY)
    (warning,) = check_series(series([10.0, 20.0, 20.0 * 1.999]), today=TODAY)
    assert "moves 2x in one session at row 2" in warning
    assert check_series(series([10.0, 19.99]), today=TODAY) == []
    assert check_series(series([0.99e9, 1e9]), today=TODAY) == []
    with pytest.raises(DataError, match="beyond any traded price"):
        check_series(series([1e9, 1.01e9]), today=TODAY)


def test_the_price_ceiling_is_exactly_one_billion():
    """1e9 itself is accepted; half a unit above it is not (a float just past the ceiling)."""
    assert check_series(series([1e9 - 1.0, 1e9]), today=TODAY) == []
    with pytest.raises(DataError, match=r"close 1e\+09 at row 2 \(2024-01-03\) is beyond any traded price"):
        check_series(series([1e9 - 1.0, 1e9 + 0.5]), today=TODAY)


def test_two_equal_closes_are_already_a_constant_series():
    """The constant check starts at two rows (one row cannot move; two that do not, never moved)."""
    with pytest.raises(DataError, match=r"never changes \(7.5 on all 2 rows\)"):
        check_series(series([7.5, 7.5]), today=TODAY)
    assert check_series(series([7.5, 7.6]), today=TODAY) == []

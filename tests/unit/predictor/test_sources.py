"""Which models a predictor serves and under which names (predictor.sources), and the one loader."""

from __future__ import annotations

import pytest

from predictor.settings import PredictorSettings
from predictor.sources import ModelSource, SourceListError, model_sources, name_of
from tests.tiny_bundle import write_tiny_bundle


def sources(**settings) -> list[ModelSource]:
    return model_sources(PredictorSettings(**settings), "kserve-name")


def test_one_bundle_directory_is_one_model_under_model_name(tiny_dir):
    assert sources(model_source=str(tiny_dir)) == [ModelSource("kserve-name", str(tiny_dir))]


@pytest.mark.parametrize("source", ["models:/aapl@champion", "models:/aapl/3", "/nowhere/yet"])
def test_one_registry_source_or_a_missing_directory_is_one_model_as_before(source):
    assert sources(model_source=source) == [ModelSource("kserve-name", source)]


@pytest.mark.parametrize(
    "source", ["models:/aapl/99999999999999999999999", "models:/aapl/-1", "models:/aapl"]
)
def test_one_registry_source_that_is_no_alias_or_version_is_refused_at_start(source):
    """Never retried against the registry: MLflow answers 500 to a version beyond int64 (issue 23)."""
    with pytest.raises(SourceListError, match=r"registry version|an alias"):
        sources(model_source=source)


@pytest.mark.parametrize("version", ["1", "9223372036854775807"])
def test_versions_up_to_int64_are_accepted(version):
    assert sources(model_source=f"models:/aapl/{version}")[0].source == f"models:/aapl/{version}"


def test_a_shard_directory_is_one_model_per_subdirectory_named_after_it(tmp_path):
    for name in ("vale3", "petr4"):
        write_tiny_bundle(tmp_path / name)
    (tmp_path / "itub4").mkdir()  # a broken member is served (and reported), not skipped
    (tmp_path / ".staging").mkdir()
    (tmp_path / "notes.txt").write_text("not a model")
    assert sources(model_source=str(tmp_path)) == [
        ModelSource(n, str(tmp_path / n)) for n in ("itub4", "petr4", "vale3")
    ]


def test_a_directory_with_no_bundle_below_stays_one_model(tmp_path):
    (tmp_path / "empty").mkdir()
    assert sources(model_source=str(tmp_path)) == [ModelSource("kserve-name", str(tmp_path))]


def test_a_list_names_each_model_after_its_registered_model_or_directory(tmp_path):
    listed = f" models:/aapl-forecaster@champion, models:/petr4/7 ,{tmp_path}/vale3/,"
    assert sources(model_sources=listed) == [
        ModelSource("aapl-forecaster", "models:/aapl-forecaster@champion"),
        ModelSource("petr4", "models:/petr4/7"),
        ModelSource("vale3", f"{tmp_path}/vale3/"),
    ]


def test_the_list_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("FORECASTER_PREDICTOR_MODEL_SOURCES", "models:/a@champion,models:/b@champion")
    assert [s.name for s in model_sources(PredictorSettings(), "m")] == ["a", "b"]


@pytest.mark.parametrize(
    "listed,words",
    [
        ("models:/a@champion,models:/a/2", "both named 'a'"),
        ("models:/a", "an alias"),
        ("models:/a/latest", "not a registry version"),
        ("models:/a/99999999999999999999999", "not a registry version: MLflow versions are whole numbers"),
        ("models:/a/0", "from 1 to 9223372036854775807"),
        ("models:/a/07", "without sign or leading zeros"),
        ("models:/a@", "empty alias"),
        ("models:/has space@champion", "names are letters"),
        (" , ", "lists no source"),
    ],
)
def test_a_list_that_cannot_be_served_as_given_is_refused_by_name(listed, words):
    with pytest.raises(SourceListError, match=words):
        sources(model_sources=listed)


@pytest.mark.parametrize(
    "given",
    [
        {"model_source": "/mnt/models", "model_sources": "models:/a@champion"},
        {"model_sources": "models:/a@champion", "model_tag": "universe=ibov"},
    ],
)
def test_two_ways_of_naming_the_models_together_are_refused(given):
    with pytest.raises(SourceListError, match="give one of"):
        sources(**given)


@pytest.mark.parametrize(
    "given,words",
    [
        ({"model_tag": "universe", "tracking_uri": "http://127.0.0.1:9"}, "KEY=VALUE"),
        ({"model_tag": "universe=ibov"}, "needs --tracking-uri"),
        ({"model_tag": "u=x' or 1=1", "tracking_uri": "http://127.0.0.1:9"}, "quotes"),
    ],
)
def test_a_tag_query_that_cannot_be_asked_is_refused_by_name(given, words):
    with pytest.raises(SourceListError, match=words):
        sources(**given)


def test_name_of_a_directory_ignores_a_trailing_slash():
    assert name_of("/mnt/models/petr4/") == "petr4"


def test_one_loader_thread_loads_every_model_and_a_bad_one_keeps_its_reason(tmp_path):
    """Three models, one corrupt: one thread loads the two good ones; the bad one is retried on its
    own and says why; nothing polls a directory after it serves."""
    import threading
    import time

    from predictor.loader import Loader
    from predictor.model import ForecastModel

    for name in ("good1", "good2", "bad"):
        write_tiny_bundle(tmp_path / name)
    (tmp_path / "bad" / "model.onnx").write_bytes(b"corrupt")
    settings = PredictorSettings(model_source=str(tmp_path), load_retry_max_s=0.2)
    models = [ForecastModel(s.name, settings, s.source) for s in model_sources(settings, "m")]
    loader = Loader(settings.reload_interval_s, settings.load_retry_max_s)
    before = threading.active_count()
    for m in models:
        loader.add(m)
    assert threading.active_count() <= before + 2  # the loader and its one pool thread, not one per model
    deadline = time.monotonic() + 10
    while not all(m.attempted for m in models) and time.monotonic() < deadline:
        time.sleep(0.05)
    ready = {m.name: m.ready for m in models}
    assert ready == {"bad": False, "good1": True, "good2": True}
    bad = models[0]
    assert bad.not_ready_reason().startswith("refused: ")  # to anyone: its state
    detail = bad.not_ready_reason(detailed=True)
    assert "sha256" in detail and str(tmp_path / "bad") in detail
    time.sleep(0.5)  # the bad one is retried; the good ones (directories) are not polled
    assert set(loader._entries) == {"bad"}
    for m in models:
        m.stop()


class Remote:
    """A registry model for the loader: `delay_s` per call, never loads."""

    def __init__(self, name: str, delay_s: float) -> None:
        self.name, self.delay_s, self.calls, self.skipped = name, delay_s, 0, []
        self.loaded, self.polls, self.remote, self.stopped = False, True, True, False
        self.recheck_s = 0.0

    def try_reload(self) -> bool:
        import time

        self.calls += 1
        time.sleep(self.delay_s)
        return False

    def skip(self, reason: str) -> None:
        self.skipped.append(reason)


def test_a_registry_that_fails_slowly_costs_one_wait_per_round_not_one_per_model(monkeypatch):
    import predictor.loader as loader_module
    from predictor.loader import Entry, Loader

    monkeypatch.setattr(loader_module, "SLOW_S", 0.05)
    loader = Loader(reload_interval_s=60, retry_max_s=30)
    models = [Remote(f"r{i}", delay_s=0.1) for i in range(5)]
    loader._entries = {m.name: Entry(m, due=0.0) for m in models}
    thread = __import__("threading").Thread(target=loader._run, daemon=True)
    thread.start()
    thread.join(0.5)  # one round, then waiting for the next retries (1 s backoff)
    assert [m.calls for m in models] == [1, 0, 0, 0, 0]
    assert all(m.skipped and "registry" in m.skipped[0] for m in models[1:])
    for m in models:
        m.stopped = True  # the loader drops them at their next turn


def test_each_model_reaches_kserves_workers_as_its_source_and_loads_there(tmp_path):
    """kserve pickles every model into each worker: its name and source travel, its state does not."""
    import pickle

    from predictor.model import ForecastModel

    for name in ("good", "bad"):
        write_tiny_bundle(tmp_path / name)
    (tmp_path / "bad" / "model.onnx").write_bytes(b"corrupt")
    settings = PredictorSettings(model_source=str(tmp_path))
    models = [ForecastModel(s.name, settings, s.source) for s in model_sources(settings, "m")]
    assert [m.try_reload() for m in models] == [False, True]
    copies = pickle.loads(pickle.dumps(models))
    assert [(c.name, c.source_uri) for c in copies] == [
        ("bad", str(tmp_path / "bad")),
        ("good", str(tmp_path / "good")),
    ]
    assert all(c.served is None and c.error is None and not c.attempted and not c.ready for c in copies)
    assert [c.try_reload() for c in copies] == [False, True]
    assert "sha256" in copies[0].not_ready_reason(detailed=True) and copies[1].ready


def test_the_loader_overlaps_a_few_loads_never_more():
    import threading
    import time

    from predictor.loader import Entry, Loader

    lock, running, peak = threading.Lock(), [0], [0]

    class Slow(Remote):
        def try_reload(self) -> bool:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.2)
            with lock:
                running[0] -= 1
            self.calls += 1
            self.loaded = True
            return True

    models = [Slow(f"s{i}", 0) for i in range(8)]
    loader = Loader(reload_interval_s=60, retry_max_s=30, concurrency=3)
    loader._entries = {m.name: Entry(m, due=0.0) for m in models}
    threading.Thread(target=loader._run, daemon=True).start()
    deadline = time.monotonic() + 5
    while sum(m.calls for m in models) < 8 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [m.calls for m in models] == [1] * 8 and peak[0] == 3
    for m in models:
        m.stopped = True

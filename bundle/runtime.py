"""onnxruntime inference on a bundle: raw closes in, next close and intervals out."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from bundle.distribution import PredictiveDistribution
from bundle.io import BundleError, LoadedBundle
from bundle.outputs import Output, outputs
from bundle.schema import Variant
from bundle.transform import model_inputs, to_price

# A format 1 level is matched up to float noise ((1 - 0.8) / 2 is 0.09999999999999998), not rounded:
# 0.1000001 is another level, which a format 1 bundle does not have.
LEVEL_TOLERANCE = 1e-12


def shrink(forecast: np.ndarray, last_close: np.ndarray, weight: float) -> np.ndarray:
    """`last * (forecast / last) ** weight`: the log return scaled toward 0 (naive) by `weight`."""
    if weight == 1.0:
        return forecast
    return last_close * np.exp(weight * np.log(forecast / last_close))


@dataclass(frozen=True)
class Forecast:
    """`mean[b, h]` next closes; `lower/upper[coverage][b, h]` interval bounds (price units).

    `sigma[b]` is the window's volatility (format 2; None for format 1), `widen[h]` = sqrt(h), and
    `distribution` the one that made the bounds (the bundle's, or an online state's), so that every
    other quantile of this forecast comes from the same object.
    """

    mean: np.ndarray
    lower: dict[float, np.ndarray]
    upper: dict[float, np.ndarray]
    sigma: np.ndarray | None = None
    widen: np.ndarray | None = None
    distribution: PredictiveDistribution | None = None


class OnnxForecaster:
    """One onnxruntime session over one bundle variant.

    Picklable (the session is rebuilt on unpickle) so kserve can spawn workers with it.
    """

    def __init__(self, bundle: LoadedBundle, variant: Variant = "fp32", threads: int = 1) -> None:
        self.bundle = bundle
        self.variant: Variant = variant
        self.threads = threads
        self.spec = bundle.metadata.features
        self.outputs: tuple[Output, ...] = outputs(i.coverage for i in bundle.metadata.intervals)
        self._session = self._open()

    def _open(self) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1  # pragma: no mutate (equivalent: ORT_SEQUENTIAL: no inter-op pool)
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # pragma: no mutate (equivalent: onnxruntime's log level only)
        try:
            return ort.InferenceSession(
                str(self.bundle.model_path(self.variant)),
                sess_options=options,
                providers=["CPUExecutionProvider"],  # pragma: no mutate (equivalent: CPU is the one provider)
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise BundleError(f"onnxruntime cannot load {self.variant} model: {exc}") from exc

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_session")
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._session = self._open()

    @property
    def window(self) -> int:
        return self.spec.window

    def run_scaled(self, features: np.ndarray) -> np.ndarray:
        """Model space in and out: `[b, steps, 1]` float32 -> `[b]` float32."""
        meta = self.bundle.metadata
        # pragma: no mutate start (immaterial: None asks for every output, and a bundle's model has one)
        (out,) = self._session.run([meta.onnx_output], {meta.onnx_input: features})
        # pragma: no mutate end
        return out.reshape(-1)  # pragma: no mutate (equivalent: numpy 2 reads reshape(-2) as reshape(-1))

    def predict(self, closes: np.ndarray) -> np.ndarray:
        """`[b, window]` closes -> `[b]` next closes (float64, price units).

        The network's log return over the last close is multiplied by the bundle's `point_weight`
        (chosen on validation; 0 is the naive forecast), so a network without skill cannot add noise.
        """
        raw = to_price(self.run_scaled(model_inputs(closes, self.spec)), closes, self.spec)
        return shrink(raw, np.asarray(closes, dtype=np.float64)[:, -1], self.bundle.metadata.point_weight)

    def forecast(
        self, closes: np.ndarray, horizon: int = 1, distribution: PredictiveDistribution | None = None
    ) -> Forecast:
        """Recursive multi-step forecast with conformal intervals.

        `distribution` replaces the bundle's (format 2) for this call: an online state's
        (`bundle.online.serving`), which the caller has checked with `bundle.online.usable`.

        Step h feeds the forecasts of steps < h back as if observed. The interval's log half-width
        grows as q * sqrt(h): daily log returns are close to uncorrelated, so the error of an h-step
        forecast is roughly a sum of h one-step errors and its spread grows with sqrt(h).
        """
        if horizon < 1:
            raise ValueError(f"horizon {horizon} is not a number of steps ahead (>= 1)")
        window = np.asarray(closes, dtype=np.float64)
        means = [self.predict(window)]
        for _ in range(horizon - 1):
            window = np.concatenate([window[:, 1:], means[-1][:, None]], axis=1)
            means.append(self.predict(window))
        mean = np.stack(means, axis=1) if horizon > 1 else means[0][:, None]
        widen = np.sqrt(np.arange(1, horizon + 1, dtype=np.float64))
        meta = self.bundle.metadata
        dist = (
            distribution if distribution is not None and meta.distribution is not None else meta.distribution
        )
        lower, upper = {}, {}
        if dist is None:  # format 1: static intervals, as served before format 2
            for interval in meta.intervals:
                lower[interval.coverage], upper[interval.coverage] = interval.bounds(mean, widen)
            return Forecast(mean=mean, lower=lower, upper=upper)
        # The scale comes from the observed window only (never from fed-back forecasts).
        sigma = dist.sigma(np.asarray(closes, dtype=np.float64))
        for interval in meta.intervals:
            lower[interval.coverage], upper[interval.coverage] = dist.bounds(
                mean, sigma, interval.coverage, widen
            )
        return Forecast(mean=mean, lower=lower, upper=upper, sigma=sigma, widen=widen, distribution=dist)

    def quantile(self, result: Forecast, q: float) -> np.ndarray:
        """Quantile `q` in (0, 1) of a forecast, `[b, h]`; consistent with its interval bounds.

        Format 2: from the predictive distribution. Format 1: only the static intervals' levels
        (and 0.5) exist; any other level raises ValueError.
        """
        if q == 0.5:
            return result.mean
        dist = result.distribution or self.bundle.metadata.distribution
        if dist is not None and result.sigma is not None:
            return dist.quantile(result.mean, result.sigma, q, result.widen)
        coverage = abs(2.0 * q - 1.0)
        side = result.lower if q < 0.5 else result.upper  # pragma: no mutate (equivalent: 0.5 has returned)
        for c, values in side.items():
            if math.isclose(c, coverage, rel_tol=0.0, abs_tol=LEVEL_TOLERANCE):  # float noise, not rounding
                return values
        raise ValueError(f"quantile {q} is not available from this format 1 bundle")

    def self_test(self) -> None:
        """Run a deterministic window through the model; refuse a model that answers nonsense."""
        t = np.arange(self.window, dtype=np.float64)  # pragma: no mutate (equivalent: int t, same values)
        # pragma: no mutate start (immaterial: another gentle path, or a third identical row)
        closes = (100.0 * np.exp(0.001 * t + 0.01 * np.sin(t)))[None, :].repeat(2, axis=0)
        # pragma: no mutate end
        result = self.forecast(closes, horizon=2)
        values = [result.mean, *result.lower.values(), *result.upper.values()]
        if not all(np.all(np.isfinite(v)) for v in values):
            raise BundleError("self-test: the model produced a non-finite forecast")
        last = closes[0, -1]  # pragma: no mutate (equivalent: the self-test's two rows are identical)
        # pragma: no mutate start (immaterial: a forecast exactly last/e or last*e; which the message shows)
        if not np.all((result.mean > last / math.e) & (result.mean < last * math.e)):
            raise BundleError(f"self-test: forecast {result.mean[0, 0]:.4g} implausible for {last:.4g}")
        # pragma: no mutate end

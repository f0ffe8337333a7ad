"""KServe transformer: tomorrow's forecast in one call (it fetches the closes, the predictor forecasts)."""

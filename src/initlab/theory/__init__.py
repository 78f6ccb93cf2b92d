"""Mean-field signal-propagation theory (Poole et al. 2016; Schoenholz et al. 2017).

At the bottom of the import graph: it reads the activation table and nothing else of initlab.
"""

from initlab.theory.mean_field import (CRITICAL_TOL, DEPTH_FACTOR, MeanField, correlation_map, critical_sigma_w2,
                                       find_critical, mean_field, second_moment, variance_map)
from initlab.theory.network import LayerPrediction, predict_layers, run_theory

__all__ = ["CRITICAL_TOL", "DEPTH_FACTOR", "LayerPrediction", "MeanField", "correlation_map", "critical_sigma_w2",
           "find_critical", "mean_field", "predict_layers", "run_theory", "second_moment", "variance_map"]

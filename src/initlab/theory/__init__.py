"""Mean-field signal propagation (Poole et al. 2016; Schoenholz et al. 2017) and the Jacobian's
spectrum at init (Pennington et al. 2017, 2018).

At the bottom of the import graph: it reads the activation table and nothing else of initlab.
"""

from initlab.theory.jacobian import (JacobianMoments, default_submap, jacobian_spectrum, predict_jacobian_moments,
                                     run_jacobian)
from initlab.theory.mean_field import (CRITICAL_TOL, DEPTH_FACTOR, MeanField, correlation_map, critical_sigma_w2,
                                       decorrelation, find_critical, mean_field, second_moment, variance_map)
from initlab.theory.network import LayerPrediction, predict_layers, run_theory

__all__ = ["CRITICAL_TOL", "DEPTH_FACTOR", "JacobianMoments", "LayerPrediction", "MeanField", "correlation_map",
           "critical_sigma_w2", "decorrelation", "default_submap", "find_critical", "jacobian_spectrum", "mean_field",
           "predict_jacobian_moments", "predict_layers", "run_jacobian", "run_theory", "second_moment",
           "variance_map"]

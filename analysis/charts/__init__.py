"""The study's charts, each in two steps (Optuna's visualization style).

``<chart>_info(experiment, ...)`` computes what the chart shows and returns a small named tuple
(tested without drawing anything); ``<chart>_figure(info)`` draws it as a Plotly figure;
``plot_<chart>(experiment, ...)`` does both. Every function takes an
:class:`analysis.experiment.Experiment` (from ``load_experiment`` or ``read_results``).

One module per chart: ``pareto`` (one objective against another and their front),
``history`` (each objective by trial number with the best so far), ``slices`` (each objective
against each searched parameter), ``parallel`` (parallel coordinates over the searched
parameters), ``importance`` (parameter importance per objective), ``curves`` (losses and
metrics over epochs), ``seeds`` (configurations across seeds and the comparison table),
``correlation`` (between metrics), ``divergence`` (per variant), ``images`` (image panels of
chosen trials). ``style`` holds the colours and layout, ``data`` what a chart shows unless told
and how many values it needs (``Sample``); the statistics are analysis.stats.
"""

from analysis.charts.correlation import CorrelationInfo, correlation_figure, correlation_info, plot_correlation
from analysis.charts.curves import CurveSeries, CurvesInfo, curves_figure, curves_info, plot_curves
from analysis.charts.data import Sample
from analysis.charts.divergence import (
    DivergenceInfo,
    divergence_figure,
    divergence_info,
    divergence_summary,
    plot_divergence,
)
from analysis.charts.history import (
    HistoryInfo,
    optimization_history_figure,
    optimization_history_info,
    plot_optimization_history,
)
from analysis.charts.images import ImagePanelInfo, image_panels_figure, image_panels_info, plot_image_panels
from analysis.charts.importance import (
    ImportanceInfo,
    param_importances_figure,
    param_importances_info,
    plot_param_importances,
)
from analysis.charts.parallel import (
    ParallelDimension,
    ParallelInfo,
    parallel_coordinates_figure,
    parallel_coordinates_info,
    plot_parallel_coordinates,
)
from analysis.charts.pareto import ParetoFrontInfo, pareto_front_figure, pareto_front_info, plot_pareto_front
from analysis.charts.seeds import (
    DistributionInfo,
    DistributionSummary,
    comparison_table,
    plot_seed_distributions,
    seed_distributions_figure,
    seed_distributions_info,
)
from analysis.charts.slices import SliceInfo, plot_slices, slice_figure, slice_info
from analysis.charts.style import VARIANT_COLORS

__all__ = [
    "VARIANT_COLORS", "Sample",
    "ParetoFrontInfo", "pareto_front_info", "pareto_front_figure", "plot_pareto_front",
    "HistoryInfo", "optimization_history_info", "optimization_history_figure", "plot_optimization_history",
    "SliceInfo", "slice_info", "slice_figure", "plot_slices",
    "ParallelDimension", "ParallelInfo", "parallel_coordinates_info", "parallel_coordinates_figure",
    "plot_parallel_coordinates",
    "ImportanceInfo", "param_importances_info", "param_importances_figure", "plot_param_importances",
    "CurveSeries", "CurvesInfo", "curves_info", "curves_figure", "plot_curves",
    "DistributionSummary", "DistributionInfo", "seed_distributions_info", "seed_distributions_figure",
    "plot_seed_distributions", "comparison_table",
    "CorrelationInfo", "correlation_info", "correlation_figure", "plot_correlation",
    "DivergenceInfo", "divergence_info", "divergence_figure", "divergence_summary", "plot_divergence",
    "ImagePanelInfo", "image_panels_info", "image_panels_figure", "plot_image_panels",
]

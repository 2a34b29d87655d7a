"""Everything that runs inside one trial: data sets, models, objectives, trainer, metrics."""

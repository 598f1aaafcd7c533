"""End-to-end audio-visual emotion and gender recognition on IEMOCAP (Chae et al. 2018).

The library behind the DVC pipeline: corpus parsing, labels, the demo corpus, faces,
audio, shards, the network, task weightings, training and metrics. It never reads
params.yaml or sys.argv itself; the entry points in pipeline/ do that.
"""

__version__ = "0.1.0"

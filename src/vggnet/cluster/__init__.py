"""Past one machine, on Ray: ``connect`` (join a cluster, start one here, or say in a sentence why not), ``runs``
(a reproduction's plan as a graph of Ray tasks, each run one task with its parents' weights as its inputs, its
files written into the folder by the driver as a serial run writes them), ``collection`` (features and predictions
for a whole image collection: Ray Data, a pool of actors that each load the model once, Parquet out); how long a
plan takes on N nodes is :mod:`vggnet.reproduce.schedule`'s. Ray is optional (``vggnet[ray]``); this package
imports it only when asked to run there. It imports the core and the reproduction; only the commands import
it.
"""

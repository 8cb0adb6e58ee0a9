"""A trained VGG behind HTTP: ``vggnet serve``. Its settings (``settings``, importable without the serve extra),
dynamic batching (``batcher``), the Open Inference Protocol (``open_inference``), an inference request answered
whichever way it came (``infer``), the routes (``routes``, FastAPI routers), the app that maps every error to its
status in one place (``app``, ``errors``), metrics and the access log (``metrics``), Triton's statistics
(``stats``) and the gRPC side (``grpc_service``). It stands on what every vggnet server shares (``web``: the engine,
bodies, errors, the server) and on the core; nothing imports it but the command that assembles its app
(:mod:`vggnet.commands.serve`), never the inside page beside it.
"""

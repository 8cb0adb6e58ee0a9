"""A trained VGG behind HTTP: ``vggnet serve``. Its settings (``settings``, importable without the serve extra), the
model behind one interface (``engine``), dynamic batching (``batcher``), the Open Inference Protocol
(``open_inference``), request bodies read within bounds (``bodies``), the routes (``routes``, FastAPI routers), the
app that maps every error to its status in one place (``app``), metrics and the access log (``metrics``), and the
server with bounded request heads and a graceful shutdown (``server``). It may import the inference layer, the model
and the data layer's image decoding; nothing imports it but the command line.
"""

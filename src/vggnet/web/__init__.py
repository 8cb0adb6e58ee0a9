"""What every vggnet server shares, below the service (``serving``) and the learner's page (``inside``), which stand
apart from each other on it: ``settings`` (the limits a server keeps, :class:`~vggnet.web.settings.Limits`),
``bodies`` (request bodies read within ``--max-body``, an upload's image), ``errors`` (what each error means to a
client, one sentence as JSON), ``engine`` (the model a server runs and its test geometry) and ``server`` (a socket
bound first, uvicorn with bounded request heads, a lingering close and a graceful shutdown).

It imports the core (the inference layer, the network, the data layer's image decoding); ``serving``, ``inside``
and the commands that assemble their apps import it.
"""

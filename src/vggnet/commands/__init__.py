"""The commands, one module each: its flags (settings dataclasses), its function (a few lines over the Python API)
and its ``COMMAND``: ``info`` (Table 1, a net's layers and receptive fields, what a file holds), ``convert`` (a VGG
file from elsewhere as a vggnet file), ``train``, ``eval``, ``predict`` (classify images, with a heat map or
Grad-CAM), ``export``, ``features``, ``probe`` (a linear classifier on saved features), ``reproduce``, ``serve``
(where the service's app is assembled), ``inside``, ``stylize`` (neural style transfer, with
progress and pictures at intervals) and ``bench``. ``dispatch`` lists them, ``command`` says what a
command is and what several share, ``on_ray`` runs a collection on a Ray cluster.

They import the core and the applications (``reproduce``, ``serving``, ``inside``, ``bench``, ``cluster``): what a
command needs to run it imports when it runs, its flags at once (``vggnet --help`` shows them); only the command
line imports them.
"""

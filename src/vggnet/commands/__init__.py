"""The commands: ``dispatch`` (what each ``vggnet`` command does: its function over the Python API, the dataclasses
of its flags, its help line) and the commands that are only commands: ``predict`` (classify images, with a heat map
or Grad-CAM), ``probe`` (a linear classifier on saved features), ``convert`` (a VGG file from elsewhere as a vggnet
file), ``info`` (Table 1, a net's layers and receptive fields, what a file holds) and ``stylize`` (neural style
transfer, with progress and pictures at intervals). They import the core and the
applications (``reproduce``, ``serving``, ``inside``, ``bench``) lazily, as each command runs; only the command
line imports them.
"""

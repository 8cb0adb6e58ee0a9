"""The commands that are only commands: ``predict`` (classify images, with a heat map or Grad-CAM), ``probe`` (a
linear classifier on saved features), ``convert`` (a VGG file from elsewhere as a vggnet file) and ``info`` (Table 1,
a net's layers and receptive fields, what a file holds). Each module holds its settings (the flags) and the function
``vggnet COMMAND`` calls; they import the core (the model, weights, formats, inference, data) and the base, and
nothing imports them but the command line.
"""

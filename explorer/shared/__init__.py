"""What several features use: cards, plots, downloads, devices, memory, cancellation, the
weights choice and its model cache, images, predictions, drawing."""

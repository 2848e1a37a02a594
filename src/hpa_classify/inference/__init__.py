"""Using a trained run: open it, load its model safely, predict probabilities (with TTA),
average the models of an ensemble, export and run ONNX, shard prediction over processes."""

"""Training by transfer learning with Lightning."""

"""Reading a competition's raw files, assigning folds, decoding images."""

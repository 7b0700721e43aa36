"""K-fold training with Lightning: the `train` stage and what it is made of."""

"""A real Flower deployment: coordinator and partner files, process supervision, Flower command lines, the node registry, the Fleet gateway."""

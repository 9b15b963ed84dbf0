"""Articles in: loaders, cleaning, duplicate detection, chunking, and the run that writes them."""

"""`redline demo`: a simulator of the four monitored systems with fault injection."""

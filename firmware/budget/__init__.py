"""The station's budget from the site: a meter, a topic, or a constant, and the operator's word."""

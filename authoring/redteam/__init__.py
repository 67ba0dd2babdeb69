"""Red teaming: raters chat with a target model to elicit harm, then label the attempt."""

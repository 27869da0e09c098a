export FROM_PROFILE_D="sourced"

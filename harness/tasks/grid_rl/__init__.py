"""Grid RL: a POMDP policy helping REINFORCE train an MDP policy (paper Sec. 7.3, App. D.3)."""
